//! # evsync-recorder-protocol: the serial link between a dock and a recorder
//!
//! In: bytes from a serial line that may drop, add or flip some of them.
//! Out: requests and answers, each matched to its request id.
//!
//! The commands stand one to one for the functions collection stations call
//! on body-worn recorders under GA/T 947 (`Init_Device`, `GetIDCode`,
//! `GetZFYInfo`, `WriteZFYInfo`, `SyncDevTime`, `SetMSDC`,
//! `ReadDeviceResolution`, `ReadDeviceBatteryDumpEnergy`), plus what a dock
//! needs to take recordings off safely: identify, list, read a range,
//! digest, guarded delete, configuration and the recorder's log; and, as
//! an evsync extension, firmware installation (begin, write, commit).
//!
//! Layers, all without I/O so tests and the fuzzer drive them directly:
//! [`frame`] (start bytes, header CRC, frame CRC, resynchronisation) →
//! [`message`] (each command's fields, over [`wire`] field encodings) →
//! [`session`] (request ids, timeouts, retries, idempotent repeats).
//! [`volume`] maps listed names onto the recorder's USB mass-storage
//! volume, for docks that copy from it. [`firmware`] says which firmware
//! version may replace the running one.
//! The specification for recorder vendors is `docs/recorder-protocol.md`.

pub mod firmware;
pub mod frame;
pub mod message;
pub mod session;
pub mod volume;
pub mod wire;
