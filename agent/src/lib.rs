//! # evsync-agent: from the recorder's files to the hub's receipt
//!
//! In: recordings and event files dropped into a spool folder by a field
//! application (field mode). Out: signed records over MQTT to the hub, and
//! the recordings' bytes as resumable HTTP uploads the hub grants.
//!
//! Guarantees: a spool file is removed only after a hash-verified copy and
//! its signed record are committed to the local buffer (SQLite, WAL,
//! `synchronous=FULL`); a record leaves the buffer only on a receipt signed
//! by the pinned hub key that names its id and hash, in the same transaction
//! that logs the receipt. MQTT PUBACKs are never taken as receipts. A held
//! copy of a recording is released only on the hub's signed media receipt,
//! which the hub sends once the bytes verified against the signed SHA-256.
//!
//! Stages: [`spool`] (pick up settled files, [`probe`] their metadata) →
//! [`buffer`] (sign, chain, commit) → [`uplink`] (publish, resend, apply
//! receipts) and [`upload`] (grants, resumable uploads, media receipts).
//! In dock mode, [`dock`] takes recordings off docked recorders and applies
//! the hub-signed configuration [`assignments`] to them.
//! [`agent`] runs them as tasks under one shutdown signal.

pub mod agent;
pub mod assignments;
pub mod buffer;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod dock;
pub mod gps;
pub mod health;
pub mod probe;
pub mod records;
pub mod spool;
pub mod tls;
pub mod uplink;
pub mod upload;
