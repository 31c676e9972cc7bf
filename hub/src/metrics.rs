//! Counters the hub exposes at `/metrics` (Prometheus text format). Every
//! refusal is counted by reason so a loss counter that moves is visible.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of the rejects counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why the record or message was refused (`bad_signature`, `malformed`, ...).
    pub reason: String,
}

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Route as declared (`/api/v1/records/{id}`), so ids do not explode the series.
    pub route: String,
    /// Status code answered.
    pub status: u16,
}

/// Label of per-device figures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Device {
    /// Device id.
    pub device: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// API request durations by route and status.
pub struct ApiLatency(Family<Request, Histogram, fn() -> Histogram>);

impl Default for ApiLatency {
    fn default() -> Self {
        Self(Family::new_with_constructor(latency_histogram))
    }
}

/// The hub's counters.
#[derive(Default)]
pub struct Metrics {
    /// Records verified and stored.
    pub records_stored: Counter,
    /// Records that arrived again after being stored (resends, replays).
    pub records_duplicate: Counter,
    /// Records and messages refused, by reason.
    pub rejected: Family<Reason, Counter>,
    /// Receipts published.
    pub receipts: Counter,
    /// Record batches (MQTT messages) processed.
    pub batches: Counter,
    /// Upload grants published.
    pub grants: Counter,
    /// Media receipts published.
    pub media_receipts: Counter,
    /// Recording bytes received by uploads (written to partials).
    pub media_bytes_received: Counter,
    /// Recordings verified and moved into the blob store.
    pub media_stored: Counter,
    /// Complete uploads whose SHA-256 did not match the signed record (discarded).
    pub media_mismatches: Counter,
    /// Uploads being received now.
    pub uploads_active: Gauge,
    /// Recording reads served (playback, with or without a range).
    pub media_reads: Counter,
    /// Entries written to the audit log.
    pub audit_entries: Counter,
    /// API requests refused before reaching their handler, by reason.
    pub api_refused: Family<Reason, Counter>,
    /// API request durations.
    pub api_latency: ApiLatency,
    /// Records waiting in each agent's buffer, per its last heartbeat.
    pub backlog_records: Family<Device, Gauge>,
    /// Bytes of those records.
    pub backlog_bytes: Family<Device, Gauge>,
    /// Recordings waiting in each agent for their media receipt, per its last heartbeat.
    pub media_backlog: Family<Device, Gauge>,
    /// Days whose coverage sums wait to be summed again (counted from rows until then).
    pub coverage_stale_days: Gauge,
    /// Clients the embedded broker's guard refused or dropped, by reason.
    pub broker_refusals: Family<Reason, Counter>,
}

impl Metrics {
    /// Counts one refusal.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one client refused or dropped by the embedded broker's guard.
    pub fn broker_refusal(&self, reason: &str) {
        self.broker_refusals
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one API request refused by the token check.
    pub fn reject_api(&self, reason: &str) {
        self.api_refused
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Observes one API request.
    pub fn api_request(&self, method: &str, route: &str, status: u16, took: std::time::Duration) {
        self.api_latency
            .0
            .get_or_create(&Request {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// Keeps an agent's backlog from its heartbeat.
    pub fn backlog(&self, device: &str, status: &serde_json::Value) {
        let label = Device {
            device: device.to_owned(),
        };
        for (family, value) in [
            (&self.backlog_records, status.get("backlog_records")),
            (&self.backlog_bytes, status.get("backlog_bytes")),
            (
                &self.media_backlog,
                status.get("media_backlog").and_then(|m| m.get("files")),
            ),
        ] {
            if let Some(v) = value.and_then(|v| v.as_i64()) {
                family.get_or_create(&label).set(v);
            }
        }
    }

    /// Renders all counters in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("evsync_hub");
        registry.register(
            "records_stored",
            "Records verified and durably stored",
            self.records_stored.clone(),
        );
        registry.register(
            "records_duplicate",
            "Records received again after being stored (resends and replays); stored once",
            self.records_duplicate.clone(),
        );
        registry.register(
            "rejected",
            "Records and messages refused, by reason",
            self.rejected.clone(),
        );
        registry.register(
            "receipts",
            "Signed receipts published",
            self.receipts.clone(),
        );
        registry.register("batches", "Record batches processed", self.batches.clone());
        registry.register("grants", "Upload grants published", self.grants.clone());
        registry.register(
            "media_receipts",
            "Signed media receipts published",
            self.media_receipts.clone(),
        );
        registry.register(
            "media_bytes_received",
            "Recording bytes received by uploads",
            self.media_bytes_received.clone(),
        );
        registry.register(
            "media_stored",
            "Recordings verified against their signed SHA-256 and stored",
            self.media_stored.clone(),
        );
        registry.register(
            "media_mismatches",
            "Complete uploads whose SHA-256 did not match the signed record (discarded)",
            self.media_mismatches.clone(),
        );
        registry.register(
            "uploads_active",
            "Uploads being received now",
            self.uploads_active.clone(),
        );
        registry.register(
            "media_reads",
            "Recording reads served (playback)",
            self.media_reads.clone(),
        );
        registry.register(
            "audit_entries",
            "Entries written to the audit log",
            self.audit_entries.clone(),
        );
        registry.register(
            "api_refused",
            "API requests refused by the token check, by reason",
            self.api_refused.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "API request durations by method, route and status",
            self.api_latency.0.clone(),
        );
        registry.register(
            "backlog_records",
            "Records waiting for a receipt in each agent's buffer (last heartbeat)",
            self.backlog_records.clone(),
        );
        registry.register(
            "backlog_bytes",
            "Bytes of the records waiting in each agent's buffer (last heartbeat)",
            self.backlog_bytes.clone(),
        );
        registry.register(
            "media_backlog",
            "Recordings waiting for upload in each agent (last heartbeat)",
            self.media_backlog.clone(),
        );
        registry.register(
            "coverage_stale_days",
            "Days whose coverage sums wait for the sweeper (their figures are counted from rows until then)",
            self.coverage_stale_days.clone(),
        );
        registry.register(
            "broker_refusals",
            "Clients the embedded broker refused at connection or dropped later (foreign topic, revoked), by reason",
            self.broker_refusals.clone(),
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
