//! Writes a seed corpus for the decoder's fuzz target: one file per well
//! formed frame of every request and of typical answers, so the fuzzer
//! starts past the checksums. `cargo run -p evsync-recorder-protocol
//! --example fuzz_seeds -- DIR` (the CI does this before fuzzing).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use evsync_recorder_protocol::message::{
    Answer, FileEntry, FirmwareImage, Identity, Request, Response, Status, ZfyInfo, MAX_CHUNK,
};
use evsync_recorder_protocol::session::{Requester, Responder};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: fuzz_seeds DIR"))?;
    std::fs::create_dir_all(&dir)?;
    let clock = NaiveDate::from_ymd_opt(2026, 11, 23)
        .and_then(|d| d.and_hms_opt(9, 30, 0))
        .ok_or_else(|| anyhow::anyhow!("bad seed time"))?;
    let zfy = ZfyInfo {
        serial: "ZFY0001".into(),
        officer_no: "010203".into(),
        unit_no: "500103000000".into(),
        officer_name: "张伟".into(),
        unit_name: "渝中区综合行政执法支队".into(),
    };
    let requests = [
        Request::Hello { min: 1, max: 1 },
        Request::InitDevice {
            password: *b"000000",
        },
        Request::GetIdCode,
        Request::Identify,
        Request::GetTime,
        Request::SyncDevTime { time: clock },
        Request::GetZfyInfo,
        Request::WriteZfyInfo(zfy.clone()),
        Request::SetMsdc { on: true },
        Request::ReadResolution,
        Request::ReadBattery,
        Request::ListFiles { from: 1, max: 64 },
        Request::ReadFile {
            index: 3,
            offset: 4096,
            len: 16384,
        },
        Request::DeleteFile {
            index: 3,
            size: 1_048_576,
            name: "20261123_093000_0003.mp4".into(),
        },
        Request::FileDigest { index: 3 },
        Request::GetConfig,
        Request::SetConfig {
            format: 0,
            data: b"resolution = \"1080p\"\n".to_vec(),
        },
        Request::ReadLog { from: 0, max: 50 },
        Request::FirmwareBegin {
            version: "SIM-2.5.0".into(),
            size: 1_048_576,
            sha256: [9; 32],
        },
        Request::FirmwareWrite {
            offset: 32768,
            data: vec![0xE5; MAX_CHUNK as usize],
        },
        Request::FirmwareCommit,
        Request::FirmwareStatus,
    ];
    let mut n = 0;
    let mut write = |bytes: Vec<u8>| -> anyhow::Result<()> {
        n += 1;
        std::fs::write(format!("{dir}/seed-{n:03}"), bytes)?;
        Ok(())
    };
    let mut responder = Responder::new();
    for req in &requests {
        let mut requester = Requester::new(Duration::from_secs(1), 1);
        write(requester.start(req, Instant::now())?)?;
    }
    let answers = [
        (
            Request::Hello { min: 1, max: 1 },
            Answer::Ok(Response::Hello {
                version: 1,
                max_chunk: 16384,
            }),
        ),
        (
            Request::Identify,
            Answer::Ok(Response::Identity(Identity {
                device_id: "ZFY0001".into(),
                officer_no: "010203".into(),
                unit_no: "500103000000".into(),
                firmware: "1.4.2".into(),
                battery_pct: 87,
                free_bytes: 1 << 34,
                total_bytes: 1 << 35,
                clock,
                utc_offset_min: 480,
                files: 2,
            })),
        ),
        (Request::GetZfyInfo, Answer::Ok(Response::ZfyInfo(zfy))),
        (
            Request::ListFiles { from: 1, max: 64 },
            Answer::Ok(Response::Files {
                entries: vec![FileEntry {
                    index: 3,
                    size: 1_048_576,
                    recorded: clock,
                    flags: 1,
                    name: "20261123_093000_0003_IMP.mp4".into(),
                }],
                more: false,
            }),
        ),
        (
            Request::ReadFile {
                index: 3,
                offset: 0,
                len: 64,
            },
            Answer::Ok(Response::Chunk {
                index: 3,
                offset: 0,
                eof: false,
                data: b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41".to_vec(),
            }),
        ),
        (
            Request::FileDigest { index: 3 },
            Answer::Ok(Response::Digest {
                index: 3,
                size: 1_048_576,
                sha256: [7; 32],
            }),
        ),
        (
            Request::FirmwareStatus,
            Answer::Ok(Response::FirmwareImage(FirmwareImage {
                version: "SIM-2.5.0".into(),
                size: 1_048_576,
                sha256: [9; 32],
                received: 65536,
            })),
        ),
        (
            Request::FirmwareCommit,
            Answer::Ok(Response::FirmwareInstalled {
                version: "SIM-2.5.0".into(),
            }),
        ),
        (
            Request::FirmwareCommit,
            Answer::Err {
                status: Status::Mismatch,
                reason: "firmware SIM-2.5.0: sha256 of the 1048576 bytes received is 00…, \
                         expected 09…"
                    .into(),
            },
        ),
        (
            Request::InitDevice {
                password: *b"123456",
            },
            Answer::Err {
                status: Status::BadPassword,
                reason: "wrong admin password".into(),
            },
        ),
    ];
    for (id, (req, answer)) in answers.iter().enumerate() {
        if let Some(bytes) = responder.answer(req.code(), 100 + id as u16, answer) {
            write(bytes)?;
        }
    }
    println!("{n} seeds in {dir}");
    Ok(())
}
