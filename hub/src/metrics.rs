//! Counters the hub exposes at `/metrics` (Prometheus text format). Every
//! refusal is counted by reason so a loss counter that moves is visible.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of the rejects counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why the record or message was refused (`bad_signature`, `malformed`, ...).
    pub reason: String,
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
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
