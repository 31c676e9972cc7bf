//! # evsync-recorder-sim: a body-worn recorder anyone can run
//!
//! Speaks the recorder serial protocol ([`evsync_recorder_protocol`]) on a
//! pseudo-terminal or a given serial device, from a storage folder of real
//! MP4 recordings with sequential indexes ([`storage`], filled by
//! [`generate`] with ffmpeg). Its clock has a settable offset; battery and
//! storage figures are reported; [`faults`] damages the line, stalls, pulls
//! the plug mid-transfer, lies about sizes or reports hostile file names.
//! [`device`] answers requests, firmware installation included (the image
//! staged in the storage folder, the installed version kept across
//! restarts); [`serve`] runs the line; [`port`] opens it; [`mount`] is its
//! USB mass-storage volume (`SetMSDC`), a folder.

pub mod device;
pub mod faults;
pub mod generate;
pub mod mount;
pub mod port;
pub mod serve;
pub mod storage;
