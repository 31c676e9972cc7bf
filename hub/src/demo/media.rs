//! Demo recordings: structurally real MP4 files (ftyp, mdat, moov with an
//! H.264 track) written with the `mp4` crate, as a recorder writes them.
//! The sample bytes are filler, so players show nothing, but every header a
//! parser reads (duration, track, sizes) is real.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::Context as _;
use mp4::{
    AvcConfig, FourCC, MediaConfig, Mp4Config, Mp4Sample, Mp4Writer, TrackConfig, TrackType,
};

/// Writes an MP4 of `seconds` at 25 frames/s, each frame `frame_bytes` long.
pub fn write_mp4(path: &Path, seconds: u32, frame_bytes: usize, seed: u8) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let config = Mp4Config {
        major_brand: FourCC::from(*b"isom"),
        minor_version: 512,
        compatible_brands: vec![
            FourCC::from(*b"isom"),
            FourCC::from(*b"avc1"),
            FourCC::from(*b"mp41"),
        ],
        timescale: 1000,
    };
    let mut w = Mp4Writer::write_start(BufWriter::new(file), &config)?;
    w.add_track(&TrackConfig {
        track_type: TrackType::Video,
        timescale: 1000,
        language: "und".into(),
        media_conf: MediaConfig::AvcConfig(AvcConfig {
            width: 1920,
            height: 1080,
            seq_param_set: vec![0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78],
            pic_param_set: vec![0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0],
        }),
    })?;
    for frame in 0..seconds * 25 {
        let mut bytes = vec![seed.wrapping_add(frame as u8); frame_bytes];
        bytes[..4].copy_from_slice(&((frame_bytes - 4) as u32).to_be_bytes());
        w.write_sample(
            1,
            &Mp4Sample {
                start_time: u64::from(frame) * 40,
                duration: 40,
                rendering_offset: 0,
                is_sync: frame % 25 == 0,
                bytes: bytes.into(),
            },
        )?;
    }
    w.write_end()?;
    let mut inner = w.into_writer();
    std::io::Write::flush(&mut inner)?;
    Ok(())
}
