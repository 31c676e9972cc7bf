//! Messages: what each command asks and what the recorder answers.
//!
//! Every response payload starts with a [`Status`] byte; on anything but
//! [`Status::Ok`] a length-byte UTF-8 reason follows instead of the body.
//! Field layouts are in `docs/recorder-protocol.md`; the GA/T 947 function
//! each command stands for is named on its variant.

use chrono::NaiveDateTime;

use crate::frame::RESPONSE_BIT;
use crate::wire::{Reader, Writer};

/// Command codes.
pub mod code {
    /// Version negotiation.
    pub const HELLO: u8 = 0x01;
    /// GA/T 947 `Init_Device`: open the recorder with its admin password.
    pub const INIT_DEVICE: u8 = 0x02;
    /// GA/T 947 `GetIDCode`: manufacturer and model.
    pub const GET_ID_CODE: u8 = 0x03;
    /// Everything a dock needs on docking, in one answer.
    pub const IDENTIFY: u8 = 0x04;
    /// The recorder clock, for measuring its offset.
    pub const GET_TIME: u8 = 0x05;
    /// GA/T 947 `SyncDevTime`: set the recorder clock.
    pub const SYNC_DEV_TIME: u8 = 0x06;
    /// GA/T 947 `GetZFYInfo`: identity and assignment.
    pub const GET_ZFY_INFO: u8 = 0x07;
    /// GA/T 947 `WriteZFYInfo`: write identity and assignment.
    pub const WRITE_ZFY_INFO: u8 = 0x08;
    /// GA/T 947 `SetMSDC`: switch USB mass storage on or off.
    pub const SET_MSDC: u8 = 0x09;
    /// GA/T 947 `ReadDeviceResolution`.
    pub const READ_RESOLUTION: u8 = 0x0A;
    /// GA/T 947 `ReadDeviceBatteryDumpEnergy`.
    pub const READ_BATTERY: u8 = 0x0B;
    /// A page of the file list.
    pub const LIST_FILES: u8 = 0x10;
    /// A range of a file.
    pub const READ_FILE: u8 = 0x11;
    /// Delete a file, guarded by its name and size.
    pub const DELETE_FILE: u8 = 0x12;
    /// SHA-256 of a whole file, computed by the recorder.
    pub const FILE_DIGEST: u8 = 0x13;
    /// The recorder's configuration.
    pub const GET_CONFIG: u8 = 0x14;
    /// Replace the recorder's configuration.
    pub const SET_CONFIG: u8 = 0x15;
    /// Lines of the recorder's own log.
    pub const READ_LOG: u8 = 0x16;
    /// Prepare to receive a firmware image (evsync extension).
    pub const FIRMWARE_BEGIN: u8 = 0x17;
    /// Bytes of the firmware image being received (evsync extension).
    pub const FIRMWARE_WRITE: u8 = 0x18;
    /// Check the received image and install it (evsync extension).
    pub const FIRMWARE_COMMIT: u8 = 0x19;
    /// The firmware image being received, for resuming (evsync extension).
    pub const FIRMWARE_STATUS: u8 = 0x1A;
}

/// Protocol (command set) versions this crate speaks.
pub const VERSIONS: std::ops::RangeInclusive<u8> = 1..=1;
/// Most entries in one [`Response::Files`] page.
pub const MAX_LIST_PAGE: u16 = 64;
/// Largest chunk one [`Request::ReadFile`] may ask for, and one
/// [`Request::FirmwareWrite`] may carry.
pub const MAX_CHUNK: u32 = 32 * 1024;
/// Most log lines in one [`Response::Log`] page.
pub const MAX_LOG_PAGE: u16 = 64;

/// A message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the fields need.
    #[error("field {field} needs {needed} bytes, {left} left (message cut short)")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// Bytes after the last field.
    #[error("{message} has {extra} bytes after its last field")]
    TrailingBytes {
        /// Message being read.
        message: &'static str,
        /// How many.
        extra: usize,
    },
    /// A string field is not UTF-8.
    #[error("field {field} is not UTF-8")]
    NotUtf8 {
        /// Field being read.
        field: &'static str,
    },
    /// A field holds a value outside its range.
    #[error("field {field} is {value:?}; expected {expected}")]
    Invalid {
        /// Field being read.
        field: &'static str,
        /// What it held.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// An unknown command code.
    #[error("unknown command code 0x{0:02x}")]
    UnknownCode(u8),
}

/// Outcome byte at the start of every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Done; the body follows.
    Ok = 0,
    /// The request was malformed.
    BadRequest = 1,
    /// `Init_Device` has not opened the recorder.
    Unauthorized = 2,
    /// Wrong admin password.
    BadPassword = 3,
    /// No such file (or log line), or no firmware image being received.
    NotFound = 4,
    /// The recorder is busy (recording); try later.
    Busy = 5,
    /// Storage error on the recorder.
    IoError = 6,
    /// Command not implemented by this recorder.
    Unsupported = 7,
    /// No common protocol version.
    VersionMismatch = 8,
    /// A guarded delete whose name or size did not match, or a firmware
    /// image whose bytes, size or SHA-256 do not match what was announced.
    Mismatch = 9,
    /// The request frame arrived damaged: send it again.
    Damaged = 10,
}

impl Status {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        use Status::*;
        Result::Ok(match v {
            0 => Ok,
            1 => BadRequest,
            2 => Unauthorized,
            3 => BadPassword,
            4 => NotFound,
            5 => Busy,
            6 => IoError,
            7 => Unsupported,
            8 => VersionMismatch,
            9 => Mismatch,
            10 => Damaged,
            _ => {
                return Err(DecodeError::Invalid {
                    field: "status",
                    value: v.to_string(),
                    expected: "a status code 0..=10",
                })
            }
        })
    }

    /// Name for errors and logs.
    pub fn as_str(self) -> &'static str {
        use Status::*;
        match self {
            Ok => "ok",
            BadRequest => "bad_request",
            Unauthorized => "unauthorized",
            BadPassword => "bad_password",
            NotFound => "not_found",
            Busy => "busy",
            IoError => "io_error",
            Unsupported => "unsupported",
            VersionMismatch => "version_mismatch",
            Mismatch => "mismatch",
            Damaged => "damaged",
        }
    }
}

/// Identity and assignment held by the recorder (GA/T 947 `ZFY_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZfyInfo {
    /// Product serial: 7 ASCII letters or digits (产品序号).
    pub serial: String,
    /// Officer number: 6 ASCII digits (警号).
    pub officer_no: String,
    /// Unit number: 12 ASCII digits (单位编号).
    pub unit_no: String,
    /// Officer name, at most 32 characters, any script (姓名).
    pub officer_name: String,
    /// Unit name, at most 32 characters, any script (单位名称).
    pub unit_name: String,
}

impl ZfyInfo {
    /// Checks every field; returns the first that is out of range.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let fixed = |field, value: &str, len, digits_only: bool, expected| {
            let ok = value.len() == len
                && value.bytes().all(|b| {
                    if digits_only {
                        b.is_ascii_digit()
                    } else {
                        b.is_ascii_alphanumeric()
                    }
                });
            if ok {
                Ok(())
            } else {
                Err(DecodeError::Invalid {
                    field,
                    value: value.to_owned(),
                    expected,
                })
            }
        };
        fixed(
            "serial",
            &self.serial,
            7,
            false,
            "7 ASCII letters or digits",
        )?;
        fixed("officer_no", &self.officer_no, 6, true, "6 ASCII digits")?;
        fixed("unit_no", &self.unit_no, 12, true, "12 ASCII digits")?;
        for (field, value) in [
            ("officer_name", &self.officer_name),
            ("unit_name", &self.unit_name),
        ] {
            if value.chars().count() > 32 || value.chars().any(char::is_control) {
                return Err(DecodeError::Invalid {
                    field,
                    value: value.clone(),
                    expected: "at most 32 characters, no control characters",
                });
            }
        }
        Ok(())
    }

    fn write(&self, w: &mut Writer) {
        w.str8(&self.serial)
            .str8(&self.officer_no)
            .str8(&self.unit_no)
            .str8(&self.officer_name)
            .str8(&self.unit_name);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let info = Self {
            serial: r.str8("serial")?,
            officer_no: r.str8("officer_no")?,
            unit_no: r.str8("unit_no")?,
            officer_name: r.str8("officer_name")?,
            unit_name: r.str8("unit_name")?,
        };
        info.validate()?;
        Ok(info)
    }
}

/// What a recorder reports on docking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Device id (the product serial of [`ZfyInfo`]).
    pub device_id: String,
    /// Officer number currently assigned, empty if none.
    pub officer_no: String,
    /// Unit number currently assigned, empty if none.
    pub unit_no: String,
    /// Firmware version.
    pub firmware: String,
    /// Battery charge, percent.
    pub battery_pct: u8,
    /// Free storage, bytes.
    pub free_bytes: u64,
    /// Total storage, bytes.
    pub total_bytes: u64,
    /// The recorder clock when it answered (its local time).
    pub clock: NaiveDateTime,
    /// The recorder clock's offset from UTC, minutes (480 for China Standard Time).
    pub utc_offset_min: i16,
    /// Files on the recorder.
    pub files: u32,
}

/// One file on the recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sequential index the recorder gave the file when it wrote it.
    pub index: u32,
    /// Size in bytes, as the recorder reports it.
    pub size: u64,
    /// When recording started, recorder local time.
    pub recorded: NaiveDateTime,
    /// Flags: bit 0 = marked important by the officer.
    pub flags: u8,
    /// The file's name on the recorder (metadata only, never a path to trust).
    pub name: String,
}

/// Flag bit: the officer marked this file important.
pub const FLAG_IMPORTANT: u8 = 0x01;

/// A firmware image the recorder is receiving (announced by
/// [`Request::FirmwareBegin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareImage {
    /// Version the image installs.
    pub version: String,
    /// Size of the whole image, bytes.
    pub size: u64,
    /// SHA-256 of the whole image.
    pub sha256: [u8; 32],
    /// Bytes received and staged so far: the offset of the next write.
    pub received: u64,
}

/// A request from the host (dock) to the recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The range of versions the host speaks.
    Hello {
        /// Lowest version.
        min: u8,
        /// Highest version.
        max: u8,
    },
    /// `Init_Device`: the 6-byte admin password.
    InitDevice {
        /// Password bytes.
        password: [u8; 6],
    },
    /// `GetIDCode`.
    GetIdCode,
    /// Identify.
    Identify,
    /// Read the clock.
    GetTime,
    /// `SyncDevTime`: set the clock to this local time.
    SyncDevTime {
        /// New recorder local time.
        time: NaiveDateTime,
    },
    /// `GetZFYInfo`.
    GetZfyInfo,
    /// `WriteZFYInfo`.
    WriteZfyInfo(ZfyInfo),
    /// `SetMSDC`: mass storage on (true) or off.
    SetMsdc {
        /// On or off.
        on: bool,
    },
    /// `ReadDeviceResolution`.
    ReadResolution,
    /// `ReadDeviceBatteryDumpEnergy`.
    ReadBattery,
    /// Files with index ≥ `from`, at most `max` of them, in index order.
    ListFiles {
        /// First index wanted.
        from: u32,
        /// Most entries wanted (≤ [`MAX_LIST_PAGE`]).
        max: u16,
    },
    /// Bytes `offset..offset+len` of file `index`.
    ReadFile {
        /// File index.
        index: u32,
        /// Start.
        offset: u64,
        /// Length (≤ [`MAX_CHUNK`]).
        len: u32,
    },
    /// Delete file `index` if it still has this name and size.
    DeleteFile {
        /// File index.
        index: u32,
        /// Expected size.
        size: u64,
        /// Expected name.
        name: String,
    },
    /// SHA-256 of file `index`.
    FileDigest {
        /// File index.
        index: u32,
    },
    /// Read the configuration.
    GetConfig,
    /// Replace the configuration.
    SetConfig {
        /// Encoding of `data`: 0 = TOML text, 1 = compact.
        format: u8,
        /// The configuration.
        data: Vec<u8>,
    },
    /// Log lines from line number `from`.
    ReadLog {
        /// First line wanted.
        from: u32,
        /// Most lines wanted (≤ [`MAX_LOG_PAGE`]).
        max: u16,
    },
    /// Prepare to receive a firmware image of `size` bytes that installs
    /// `version` (evsync extension; GA/T 947 has no firmware function).
    /// Discards an unfinished image.
    FirmwareBegin {
        /// Version the image installs; must be newer than the running one
        /// (see [`crate::firmware::check_upgrade`]).
        version: String,
        /// Size of the whole image, bytes.
        size: u64,
        /// SHA-256 of the whole image.
        sha256: [u8; 32],
    },
    /// Bytes of the image at `offset`: the bytes received so far, or a
    /// repeat of bytes already received (acknowledged if identical).
    FirmwareWrite {
        /// Where `data` goes in the image.
        offset: u64,
        /// The bytes (1..=[`MAX_CHUNK`], at most the recorder's `max_chunk`).
        data: Vec<u8>,
    },
    /// Check the received image against its `FirmwareBegin` and install it.
    FirmwareCommit,
    /// The image being received, to resume it after a lost answer or an unplug.
    FirmwareStatus,
}

impl Request {
    /// Its command code.
    pub fn code(&self) -> u8 {
        use Request::*;
        match self {
            Hello { .. } => code::HELLO,
            InitDevice { .. } => code::INIT_DEVICE,
            GetIdCode => code::GET_ID_CODE,
            Identify => code::IDENTIFY,
            GetTime => code::GET_TIME,
            SyncDevTime { .. } => code::SYNC_DEV_TIME,
            GetZfyInfo => code::GET_ZFY_INFO,
            WriteZfyInfo(_) => code::WRITE_ZFY_INFO,
            SetMsdc { .. } => code::SET_MSDC,
            ReadResolution => code::READ_RESOLUTION,
            ReadBattery => code::READ_BATTERY,
            ListFiles { .. } => code::LIST_FILES,
            ReadFile { .. } => code::READ_FILE,
            DeleteFile { .. } => code::DELETE_FILE,
            FileDigest { .. } => code::FILE_DIGEST,
            GetConfig => code::GET_CONFIG,
            SetConfig { .. } => code::SET_CONFIG,
            ReadLog { .. } => code::READ_LOG,
            FirmwareBegin { .. } => code::FIRMWARE_BEGIN,
            FirmwareWrite { .. } => code::FIRMWARE_WRITE,
            FirmwareCommit => code::FIRMWARE_COMMIT,
            FirmwareStatus => code::FIRMWARE_STATUS,
        }
    }

    /// Its payload.
    pub fn encode(&self) -> Vec<u8> {
        use Request::*;
        let mut w = Writer::new();
        match self {
            Hello { min, max } => {
                w.u8(*min).u8(*max);
            }
            InitDevice { password } => {
                w.raw(password);
            }
            SyncDevTime { time } => {
                w.time(*time);
            }
            WriteZfyInfo(info) => info.write(&mut w),
            SetMsdc { on } => {
                w.u8(u8::from(*on));
            }
            ListFiles { from, max } | ReadLog { from, max } => {
                w.u32(*from).u16(*max);
            }
            ReadFile { index, offset, len } => {
                w.u32(*index).u64(*offset).u32(*len);
            }
            DeleteFile { index, size, name } => {
                w.u32(*index).u64(*size).str8(name);
            }
            FileDigest { index } => {
                w.u32(*index);
            }
            SetConfig { format, data } => {
                w.u8(*format).bytes16(data);
            }
            FirmwareBegin {
                version,
                size,
                sha256,
            } => {
                w.str8(version).u64(*size).raw(sha256);
            }
            FirmwareWrite { offset, data } => {
                w.u64(*offset).bytes16(data);
            }
            GetIdCode | Identify | GetTime | GetZfyInfo | ReadResolution | ReadBattery
            | GetConfig | FirmwareCommit | FirmwareStatus => {}
        }
        w.finish()
    }

    /// Decodes a request frame's code and payload (the recorder's side).
    pub fn decode(code: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        use Request::*;
        let mut r = Reader::new(payload);
        let req = match code {
            code::HELLO => Hello {
                min: r.u8("min")?,
                max: r.u8("max")?,
            },
            code::INIT_DEVICE => InitDevice {
                password: r.array("password")?,
            },
            code::GET_ID_CODE => GetIdCode,
            code::IDENTIFY => Identify,
            code::GET_TIME => GetTime,
            code::SYNC_DEV_TIME => SyncDevTime {
                time: r.time("time")?,
            },
            code::GET_ZFY_INFO => GetZfyInfo,
            code::WRITE_ZFY_INFO => WriteZfyInfo(ZfyInfo::read(&mut r)?),
            code::SET_MSDC => SetMsdc {
                on: bool_field(&mut r, "on")?,
            },
            code::READ_RESOLUTION => ReadResolution,
            code::READ_BATTERY => ReadBattery,
            code::LIST_FILES => ListFiles {
                from: r.u32("from")?,
                max: bounded(r.u16("max")?, MAX_LIST_PAGE, "max", "1..=64")?,
            },
            code::READ_FILE => ReadFile {
                index: r.u32("index")?,
                offset: r.u64("offset")?,
                len: bounded(r.u32("len")?, MAX_CHUNK, "len", "1..=32768")?,
            },
            code::DELETE_FILE => DeleteFile {
                index: r.u32("index")?,
                size: r.u64("size")?,
                name: r.str8("name")?,
            },
            code::FILE_DIGEST => FileDigest {
                index: r.u32("index")?,
            },
            code::GET_CONFIG => GetConfig,
            code::SET_CONFIG => SetConfig {
                format: r.u8("format")?,
                data: r.bytes16("data")?,
            },
            code::READ_LOG => ReadLog {
                from: r.u32("from")?,
                max: bounded(r.u16("max")?, MAX_LOG_PAGE, "max", "1..=64")?,
            },
            code::FIRMWARE_BEGIN => FirmwareBegin {
                version: r.str8("version")?,
                size: r.u64("size")?,
                sha256: r.array("sha256")?,
            },
            code::FIRMWARE_WRITE => FirmwareWrite {
                offset: r.u64("offset")?,
                data: firmware_data(r.bytes16("data")?)?,
            },
            code::FIRMWARE_COMMIT => FirmwareCommit,
            code::FIRMWARE_STATUS => FirmwareStatus,
            other => return Err(DecodeError::UnknownCode(other)),
        };
        r.end("request")?;
        Ok(req)
    }
}

fn bool_field(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(DecodeError::Invalid {
            field,
            value: v.to_string(),
            expected: "0 or 1",
        }),
    }
}

fn firmware_data(data: Vec<u8>) -> Result<Vec<u8>, DecodeError> {
    if !data.is_empty() && data.len() <= MAX_CHUNK as usize {
        Ok(data)
    } else {
        Err(DecodeError::Invalid {
            field: "data",
            value: format!("{} bytes", data.len()),
            expected: "1..=32768 bytes",
        })
    }
}

fn bounded<T: PartialOrd + Default + ToString + Copy>(
    v: T,
    max: T,
    field: &'static str,
    expected: &'static str,
) -> Result<T, DecodeError> {
    if v > T::default() && v <= max {
        Ok(v)
    } else {
        Err(DecodeError::Invalid {
            field,
            value: v.to_string(),
            expected,
        })
    }
}

/// A successful answer, one variant per command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// To `Hello`: the version chosen and the largest chunk the recorder
    /// serves (`ReadFile`) and takes (`FirmwareWrite`).
    Hello {
        /// Chosen version.
        version: u8,
        /// Largest `ReadFile` length it serves, and `FirmwareWrite` length it takes.
        max_chunk: u32,
    },
    /// To `InitDevice`, `SyncDevTime` (with the clock before the change),
    /// `WriteZfyInfo`, `SetMsdc`, `DeleteFile`, `SetConfig`.
    Done,
    /// To `GetIdCode`.
    IdCode {
        /// Manufacturer.
        manufacturer: String,
        /// Model.
        model: String,
    },
    /// To `Identify`.
    Identity(Identity),
    /// To `GetTime`, and to `SyncDevTime` (the clock just before it was set).
    Time {
        /// Recorder local time.
        clock: NaiveDateTime,
        /// Milliseconds within that second.
        millis: u16,
    },
    /// To `GetZfyInfo`.
    ZfyInfo(ZfyInfo),
    /// To `ReadResolution`.
    Resolution {
        /// Width, pixels.
        width: u16,
        /// Height, pixels.
        height: u16,
        /// Frames per second.
        fps: u8,
    },
    /// To `ReadBattery`.
    Battery {
        /// Charge, percent.
        percent: u8,
        /// Whether it is charging.
        charging: bool,
    },
    /// To `ListFiles`.
    Files {
        /// Entries in index order.
        entries: Vec<FileEntry>,
        /// Whether files with higher indexes follow.
        more: bool,
    },
    /// To `ReadFile`.
    Chunk {
        /// File index.
        index: u32,
        /// Offset of `data`.
        offset: u64,
        /// Whether `data` reaches the end of the file.
        eof: bool,
        /// The bytes (fewer than asked at the end of the file).
        data: Vec<u8>,
    },
    /// To `FileDigest`.
    Digest {
        /// File index.
        index: u32,
        /// Size the digest covers.
        size: u64,
        /// SHA-256.
        sha256: [u8; 32],
    },
    /// To `GetConfig`.
    Config {
        /// Encoding (0 = TOML text, 1 = compact).
        format: u8,
        /// The configuration.
        data: Vec<u8>,
    },
    /// To `ReadLog`.
    Log {
        /// Line number to ask for next.
        next: u32,
        /// The lines.
        lines: Vec<String>,
    },
    /// To `FirmwareBegin`, `FirmwareWrite` and `FirmwareStatus`: the image
    /// being received, with the bytes staged so far.
    FirmwareImage(FirmwareImage),
    /// To `FirmwareCommit`: the image was whole and is installed.
    FirmwareInstalled {
        /// The firmware version now running.
        version: String,
    },
}

/// An answer: success with its body, or a status with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Success.
    Ok(Response),
    /// Refused or failed.
    Err {
        /// Why, as a code.
        status: Status,
        /// Why, in words.
        reason: String,
    },
}

impl Answer {
    /// The response payload (status byte first).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Answer::Err { status, reason } => {
                w.u8(*status as u8).str8(reason);
            }
            Answer::Ok(resp) => {
                w.u8(Status::Ok as u8);
                resp.write(&mut w);
            }
        }
        w.finish()
    }

    /// Decodes the answer to the request with command `code` (the host's side).
    pub fn decode(code: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let status = Status::from_u8(r.u8("status")?)?;
        if status != Status::Ok {
            let reason = r.str8("reason")?;
            r.end("error response")?;
            return Ok(Answer::Err { status, reason });
        }
        let resp = Response::read(code & !RESPONSE_BIT, &mut r)?;
        r.end("response")?;
        Ok(Answer::Ok(resp))
    }
}

impl Response {
    fn write(&self, w: &mut Writer) {
        use Response::*;
        match self {
            Hello { version, max_chunk } => {
                w.u8(*version).u32(*max_chunk);
            }
            Done => {}
            IdCode {
                manufacturer,
                model,
            } => {
                w.str8(manufacturer).str8(model);
            }
            Identity(i) => {
                w.str8(&i.device_id)
                    .str8(&i.officer_no)
                    .str8(&i.unit_no)
                    .str8(&i.firmware)
                    .u8(i.battery_pct)
                    .u64(i.free_bytes)
                    .u64(i.total_bytes)
                    .time(i.clock)
                    .i16(i.utc_offset_min)
                    .u32(i.files);
            }
            Time { clock, millis } => {
                w.time(*clock).u16(*millis);
            }
            ZfyInfo(info) => info.write(w),
            Resolution { width, height, fps } => {
                w.u16(*width).u16(*height).u8(*fps);
            }
            Battery { percent, charging } => {
                w.u8(*percent).u8(u8::from(*charging));
            }
            Files { entries, more } => {
                w.u8(u8::from(*more)).u16(entries.len() as u16);
                for e in entries {
                    w.u32(e.index)
                        .u64(e.size)
                        .time(e.recorded)
                        .u8(e.flags)
                        .str8(&e.name);
                }
            }
            Chunk {
                index,
                offset,
                eof,
                data,
            } => {
                w.u32(*index).u64(*offset).u8(u8::from(*eof)).raw(data);
            }
            Digest {
                index,
                size,
                sha256,
            } => {
                w.u32(*index).u64(*size).raw(sha256);
            }
            Config { format, data } => {
                w.u8(*format).bytes16(data);
            }
            Log { next, lines } => {
                w.u32(*next).u16(lines.len() as u16);
                for l in lines {
                    w.str8(l);
                }
            }
            FirmwareImage(image) => {
                w.str8(&image.version)
                    .u64(image.size)
                    .raw(&image.sha256)
                    .u64(image.received);
            }
            FirmwareInstalled { version } => {
                w.str8(version);
            }
        }
    }

    fn read(code: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use Response::*;
        Ok(match code {
            code::HELLO => Hello {
                version: r.u8("version")?,
                max_chunk: r.u32("max_chunk")?,
            },
            code::INIT_DEVICE
            | code::WRITE_ZFY_INFO
            | code::SET_MSDC
            | code::DELETE_FILE
            | code::SET_CONFIG => Done,
            code::GET_ID_CODE => IdCode {
                manufacturer: r.str8("manufacturer")?,
                model: r.str8("model")?,
            },
            code::IDENTIFY => Identity(self::Identity {
                device_id: r.str8("device_id")?,
                officer_no: r.str8("officer_no")?,
                unit_no: r.str8("unit_no")?,
                firmware: r.str8("firmware")?,
                battery_pct: r.u8("battery_pct")?,
                free_bytes: r.u64("free_bytes")?,
                total_bytes: r.u64("total_bytes")?,
                clock: r.time("clock")?,
                utc_offset_min: r.i16("utc_offset_min")?,
                files: r.u32("files")?,
            }),
            code::GET_TIME | code::SYNC_DEV_TIME => Time {
                clock: r.time("clock")?,
                millis: bounded_millis(r.u16("millis")?)?,
            },
            code::GET_ZFY_INFO => ZfyInfo(self::ZfyInfo::read(r)?),
            code::READ_RESOLUTION => Resolution {
                width: r.u16("width")?,
                height: r.u16("height")?,
                fps: r.u8("fps")?,
            },
            code::READ_BATTERY => Battery {
                percent: r.u8("percent")?,
                charging: bool_field(r, "charging")?,
            },
            code::LIST_FILES => {
                let more = bool_field(r, "more")?;
                let n = r.u16("count")?;
                if n > MAX_LIST_PAGE {
                    return Err(DecodeError::Invalid {
                        field: "count",
                        value: n.to_string(),
                        expected: "at most 64 entries",
                    });
                }
                let mut entries = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    entries.push(FileEntry {
                        index: r.u32("index")?,
                        size: r.u64("size")?,
                        recorded: r.time("recorded")?,
                        flags: r.u8("flags")?,
                        name: r.str8("name")?,
                    });
                }
                Files { entries, more }
            }
            code::READ_FILE => Chunk {
                index: r.u32("index")?,
                offset: r.u64("offset")?,
                eof: bool_field(r, "eof")?,
                data: r.rest().to_vec(),
            },
            code::FILE_DIGEST => Digest {
                index: r.u32("index")?,
                size: r.u64("size")?,
                sha256: r.array("sha256")?,
            },
            code::GET_CONFIG => Config {
                format: r.u8("format")?,
                data: r.bytes16("data")?,
            },
            code::READ_LOG => {
                let next = r.u32("next")?;
                let n = r.u16("count")?;
                if n > MAX_LOG_PAGE {
                    return Err(DecodeError::Invalid {
                        field: "count",
                        value: n.to_string(),
                        expected: "at most 64 lines",
                    });
                }
                let lines = (0..n).map(|_| r.str8("line")).collect::<Result<_, _>>()?;
                Log { next, lines }
            }
            code::FIRMWARE_BEGIN | code::FIRMWARE_WRITE | code::FIRMWARE_STATUS => {
                let image = self::FirmwareImage {
                    version: r.str8("version")?,
                    size: r.u64("size")?,
                    sha256: r.array("sha256")?,
                    received: r.u64("received")?,
                };
                if image.received > image.size {
                    return Err(DecodeError::Invalid {
                        field: "received",
                        value: image.received.to_string(),
                        expected: "at most the image size",
                    });
                }
                FirmwareImage(image)
            }
            code::FIRMWARE_COMMIT => FirmwareInstalled {
                version: r.str8("version")?,
            },
            other => return Err(DecodeError::UnknownCode(other)),
        })
    }
}

fn bounded_millis(v: u16) -> Result<u16, DecodeError> {
    if v < 1000 {
        Ok(v)
    } else {
        Err(DecodeError::Invalid {
            field: "millis",
            value: v.to_string(),
            expected: "0..=999",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_time;

    fn t(s: &str) -> NaiveDateTime {
        parse_time(s).unwrap()
    }

    fn zfy() -> ZfyInfo {
        ZfyInfo {
            serial: "ZFY0001".into(),
            officer_no: "012345".into(),
            unit_no: "500103000000".into(),
            officer_name: "张三".into(),
            unit_name: "重庆市渝中区市场监督管理局".into(),
        }
    }

    fn image(received: u64) -> FirmwareImage {
        FirmwareImage {
            version: "SIM-2.5.0".into(),
            size: 3 << 20,
            sha256: [0xAB; 32],
            received,
        }
    }

    fn every_request() -> Vec<Request> {
        use Request::*;
        vec![
            Hello { min: 1, max: 3 },
            InitDevice {
                password: *b"000000",
            },
            GetIdCode,
            Identify,
            GetTime,
            SyncDevTime {
                time: t("20261123083000"),
            },
            GetZfyInfo,
            WriteZfyInfo(zfy()),
            SetMsdc { on: true },
            ReadResolution,
            ReadBattery,
            ListFiles { from: 5, max: 64 },
            ReadFile {
                index: 3,
                offset: 1 << 33,
                len: 32768,
            },
            DeleteFile {
                index: 3,
                size: 99,
                name: "VID_0003.mp4".into(),
            },
            FileDigest { index: 3 },
            GetConfig,
            SetConfig {
                format: 0,
                data: b"a = 1".to_vec(),
            },
            ReadLog { from: 0, max: 10 },
            FirmwareBegin {
                version: "SIM-2.5.0".into(),
                size: 3 << 20,
                sha256: [0xAB; 32],
            },
            FirmwareWrite {
                offset: 1 << 20,
                data: vec![0x5A; MAX_CHUNK as usize],
            },
            FirmwareCommit,
            FirmwareStatus,
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for req in every_request() {
            let back = Request::decode(req.code(), &req.encode()).unwrap();
            assert_eq!(back, req);
        }
    }

    #[test]
    fn every_response_round_trips() {
        use Response::*;
        let cases = vec![
            (
                code::HELLO,
                Hello {
                    version: 1,
                    max_chunk: 16384,
                },
            ),
            (code::DELETE_FILE, Done),
            (
                code::GET_ID_CODE,
                IdCode {
                    manufacturer: "Evsync".into(),
                    model: "SIM-1".into(),
                },
            ),
            (
                code::IDENTIFY,
                Identity(self::Identity {
                    device_id: "ZFY0001".into(),
                    officer_no: "012345".into(),
                    unit_no: "500103000000".into(),
                    firmware: "1.2.3".into(),
                    battery_pct: 80,
                    free_bytes: 1 << 35,
                    total_bytes: 1 << 36,
                    clock: t("20261123083000"),
                    utc_offset_min: 480,
                    files: 12,
                }),
            ),
            (
                code::SYNC_DEV_TIME,
                Time {
                    clock: t("20261123103000"),
                    millis: 999,
                },
            ),
            (code::GET_ZFY_INFO, ZfyInfo(zfy())),
            (
                code::READ_RESOLUTION,
                Resolution {
                    width: 1920,
                    height: 1080,
                    fps: 30,
                },
            ),
            (
                code::READ_BATTERY,
                Battery {
                    percent: 55,
                    charging: true,
                },
            ),
            (
                code::LIST_FILES,
                Files {
                    entries: vec![FileEntry {
                        index: 1,
                        size: 5_000_000,
                        recorded: t("20261123080000"),
                        flags: FLAG_IMPORTANT,
                        name: "../../etc/passwd\u{7}".into(),
                    }],
                    more: true,
                },
            ),
            (
                code::READ_FILE,
                Chunk {
                    index: 1,
                    offset: 4096,
                    eof: true,
                    data: vec![1, 2, 3],
                },
            ),
            (
                code::FILE_DIGEST,
                Digest {
                    index: 1,
                    size: 3,
                    sha256: [7; 32],
                },
            ),
            (
                code::GET_CONFIG,
                Config {
                    format: 0,
                    data: b"x".to_vec(),
                },
            ),
            (
                code::READ_LOG,
                Log {
                    next: 3,
                    lines: vec!["boot".into(), "录像开始".into()],
                },
            ),
            (code::FIRMWARE_BEGIN, FirmwareImage(image(0))),
            (code::FIRMWARE_WRITE, FirmwareImage(image(32768))),
            (code::FIRMWARE_STATUS, FirmwareImage(image(3 << 20))),
            (
                code::FIRMWARE_COMMIT,
                FirmwareInstalled {
                    version: "SIM-2.5.0".into(),
                },
            ),
        ];
        for (code, resp) in cases {
            let answer = Answer::Ok(resp);
            let back = Answer::decode(code | RESPONSE_BIT, &answer.encode()).unwrap();
            assert_eq!(back, answer);
        }
        let refusal = Answer::Err {
            status: Status::BadPassword,
            reason: "wrong admin password".into(),
        };
        assert_eq!(
            Answer::decode(code::INIT_DEVICE, &refusal.encode()).unwrap(),
            refusal
        );
    }

    #[test]
    fn out_of_range_fields_are_refused_with_the_field_and_what_is_allowed() {
        let mut bad = zfy();
        bad.officer_no = "12a45".into();
        let err = Request::decode(code::WRITE_ZFY_INFO, &Request::WriteZfyInfo(bad).encode())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field officer_no is \"12a45\"; expected 6 ASCII digits"
        );
        let mut long = zfy();
        long.officer_name = "名".repeat(33);
        assert!(long.validate().is_err());
        let err = Request::decode(
            code::READ_FILE,
            &Request::ReadFile {
                index: 1,
                offset: 0,
                len: MAX_CHUNK + 1,
            }
            .encode(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("expected 1..=32768"), "{err}");
        let err = Request::decode(0x6E, &[]).unwrap_err();
        assert_eq!(err.to_string(), "unknown command code 0x6e");
        for data in [vec![], vec![0; MAX_CHUNK as usize + 1]] {
            let err = Request::decode(
                code::FIRMWARE_WRITE,
                &Request::FirmwareWrite { offset: 0, data }.encode(),
            )
            .unwrap_err();
            assert!(
                err.to_string().starts_with("field data is \"")
                    && err.to_string().ends_with("expected 1..=32768 bytes"),
                "{err}"
            );
        }
        let err = Answer::decode(
            code::FIRMWARE_WRITE | RESPONSE_BIT,
            &Answer::Ok(Response::FirmwareImage(image((3 << 20) + 1))).encode(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field received is \"3145729\"; expected at most the image size"
        );
        let mut extra = Request::GetTime.encode();
        extra.push(0);
        assert!(matches!(
            Request::decode(code::GET_TIME, &extra),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn a_full_firmware_write_fits_in_one_frame() {
        let req = Request::FirmwareWrite {
            offset: u64::MAX,
            data: vec![0xFF; MAX_CHUNK as usize],
        };
        let mut host = crate::session::Requester::new(std::time::Duration::from_secs(1), 1);
        assert!(host.start(&req, std::time::Instant::now()).is_ok());
    }
}
