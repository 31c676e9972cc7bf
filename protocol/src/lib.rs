//! # evsync-protocol: what the agent and the hub both speak
//!
//! In: the facts of one piece of evidence (a recording's hash and container
//! metadata, or a structured enforcement event). Out: the exact bytes that
//! travel over MQTT, and the checks the far side runs on them.
//!
//! This crate does no I/O apart from [`keyfile`] (loading and creating the
//! Ed25519 key files both binaries keep). Everything else is pure: encoders,
//! decoders and checks that tests drive deterministically.
//!
//! Guarantees this crate provides to the rest of the system:
//! - a signature always covers the exact bytes that are transmitted
//!   ([`envelope`]); nothing is re-serialised before verification;
//! - records of one source form a hash chain with a gap-free sequence
//!   ([`chain`]), so deletion and alteration are detectable;
//! - receipts are signed by the hub's key, and the agent can verify that a
//!   receipt names exactly the records it holds ([`receipt`]);
//! - the bytes of a recording are uploaded only under a hub-signed grant for
//!   a record the hub holds ([`grant`]), and the agent lets go of its copy
//!   only on a hub-signed media receipt ([`media_receipt`]);
//! - a recorder is configured only by a hub-signed, never older assignment
//!   ([`assignment`]).
//!
//! The format is specified for third parties in `docs/wire-protocol.md`,
//! whose test vectors are checked by `tests/vectors.rs`.

pub mod announce;
pub mod assignment;
pub mod batch;
pub mod chain;
pub mod envelope;
pub mod error;
pub mod grant;
pub mod keyfile;
pub mod media_receipt;
pub mod receipt;
pub mod record;
pub mod signing;
pub mod topic;

pub use error::ProtocolError;
