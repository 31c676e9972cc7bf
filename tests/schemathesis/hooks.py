"""Schemathesis hooks for tests/tests/openapi_conformance.rs.

PATCH /api/v1/uploads/{id} takes its body as application/offset+octet-stream
(the tus media type: raw bytes at Upload-Offset). Schemathesis has no
serializer for it, so the bytes it generates are sent as they are, exactly as
it sends application/octet-stream.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
