//! # evsync-hub: where records arrive, are verified, stored and served
//!
//! In: record batches, announcements and status over MQTT (embedded rumqttd
//! broker by default, or an external one). Out: signed receipts over MQTT,
//! and the records feed, alerts and metrics over HTTP for the supervision
//! platform.
//!
//! Guarantees: a receipt is signed only after the records it names are
//! committed to the store; each (source, seq) is stored once; a forged,
//! altered or unknown-device record is refused and counted, never stored;
//! gaps and breaks in a source's chain become alerts.
//!
//! Stages: [`broker`] → [`link`] (MQTT client) → [`ingest`] (verify, store,
//! receipt) → [`store`] → [`api`] (feed, alerts, metrics).

pub mod api;
pub mod broker;
pub mod cli;
pub mod config;
pub mod demo;
pub mod ingest;
pub mod link;
pub mod metrics;
pub mod server;
pub mod store;
