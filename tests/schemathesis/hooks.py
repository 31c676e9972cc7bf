"""Schemathesis hooks for tests/tests/openapi_conformance.rs.

PATCH /api/v1/uploads/{id} takes its body as application/offset+octet-stream
(the tus media type: raw bytes at Upload-Offset). Schemathesis has no
serializer for it, so the bytes it generates are sent as they are, exactly as
it sends application/octet-stream.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


# Imported actions and duty rosters have rules across fields that a schema
# cannot state: an end after its start (a duty at most 24 h), lat with lon,
# an id or a case number. Generated rows are brought within them, so most
# schema-valid imports are good ones; rows that break the schema itself are
# still sent as generated (negative testing), and the hub's refusal of a
# row that breaks these rules is tested in tests/tests/coverage_alerts.rs.
from datetime import datetime, timedelta

_IMPORTS = {"/api/v1/coverage/actions": "actions", "/api/v1/coverage/duties": "duties"}


def _time(value):
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _fix_row(kind, row, n):
    start, end = _time(row.get("start")), _time(row.get("end"))
    if start is not None and end is not None and start.tzinfo is not None and end.tzinfo is not None:
        if end < start:
            row["start"], row["end"] = row["end"], row["start"]
            start, end = end, start
        if kind == "duties":
            if end == start:
                row["end"] = (start + timedelta(hours=8)).isoformat()
            elif end - start > timedelta(hours=24):
                row["end"] = (start + timedelta(hours=8)).isoformat()
    if kind == "actions":
        if not any(isinstance(row.get(k), str) and row[k].strip() for k in ("id", "case_number")):
            row["id"] = f"st-{n}"
        if (row.get("lat") is None) != (row.get("lon") is None):
            row["lat"] = row["lon"] = None


@schemathesis.hook
def map_body(ctx, body):
    kind = _IMPORTS.get(ctx.operation.path)
    if kind and ctx.operation.method.upper() == "POST" and isinstance(body, dict):
        rows = body.get(kind)
        if isinstance(rows, list):
            for n, row in enumerate(rows):
                if isinstance(row, dict):
                    _fix_row(kind, row, n)
    return body
