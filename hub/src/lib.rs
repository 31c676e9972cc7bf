//! # evsync-hub: where records arrive, are verified, stored and served
//!
//! In: record batches, announcements and status over MQTT (embedded rumqttd
//! broker by default, or an external one). Out: signed receipts over MQTT,
//! and the records feed, alerts and metrics over HTTP for the supervision
//! platform; recordings uploaded over HTTP under hub-signed grants,
//! verified against their signed SHA-256 and kept in a content-addressed
//! blob store ([`media`]).
//!
//! Guarantees: a receipt is signed only after the records it names are
//! committed to the store; each (source, seq) is stored once; a forged,
//! altered or unknown-device record is refused and counted, never stored;
//! gaps and breaks in a source's chain become alerts; a recording is
//! reported stored (and receipted) only once its bytes verified and are
//! durable in the blob store.
//!
//! Stages: [`broker`] → [`link`] (MQTT client) → [`ingest`] (verify, store,
//! receipt) → [`store`] → [`api`] (feed, alerts, metrics).

pub mod api;
pub mod broker;
pub mod cli;
pub mod config;
pub mod config_publisher;
pub mod coverage;
pub mod dashboard;
pub mod demo;
pub mod ingest;
pub mod link;
pub mod media;
pub mod metrics;
pub mod mosquitto;
pub mod server;
pub mod store;
pub mod tls;
