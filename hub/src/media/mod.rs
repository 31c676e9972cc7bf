//! The media data plane at the hub: recordings travel as resumable HTTP
//! uploads, granted over MQTT for a media record the hub already holds and
//! receipted over MQTT once verified and stored.
//!
//! - [`issuer`] signs grants and media receipts;
//! - [`upload`] takes the bytes (`HEAD` for the durable offset, `PATCH` to
//!   append) into [`partials`] (a folder hubs may share, so an upload
//!   continues on whichever hub takes its next chunk), verifies the whole
//!   SHA-256 and moves them into [`blobs`] (a local folder or an
//!   S3-compatible bucket);
//! - [`serve`] plays them back with HTTP Range support, from either store.
//!
//! Why not MQTT for the bytes: see `docs/wire-protocol.md`, "Media data plane".

pub mod blobs;
pub mod issuer;
pub mod partials;
pub mod serve;
pub mod upload;

pub use blobs::Blobs;
pub use issuer::Issuer;
pub use partials::Partials;
pub use upload::Uploads;
