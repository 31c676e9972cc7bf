//! What a media file is: its MIME type from the name, and for MP4/MOV the
//! recording start and duration from the container header (`moov/mvhd`).
//! Only the header boxes are read; the media data is skipped, never loaded.
//! A corrupt container is reported, and the file is still evidence.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use chrono::{DateTime, Utc};

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
const MP4_EPOCH_OFFSET: i64 = 2_082_844_800;

/// Container metadata of a recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    /// MIME type.
    pub mime: &'static str,
    /// Recording start from the container, if it records one.
    pub started_at: Option<DateTime<Utc>>,
    /// Duration from the container.
    pub duration_ms: Option<u64>,
    /// Why the container could not be read, if it could not.
    pub problem: Option<String>,
}

/// Whether a spool file name is an event file rather than a recording.
pub fn is_event_file(name: &str) -> bool {
    extension(name).as_deref() == Some("json")
}

fn extension(name: &str) -> Option<String> {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// MIME type by extension; unknown kinds are still evidence (`application/octet-stream`).
pub fn mime_for(name: &str) -> &'static str {
    match extension(name).as_deref() {
        Some("mp4") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("avi") => "video/x-msvideo",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("m4a") | Some("aac") => "audio/mp4",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Reads the container metadata of `path` (named `name` at its source).
pub fn probe(path: &Path, name: &str) -> MediaInfo {
    let mime = mime_for(name);
    let mut info = MediaInfo {
        mime,
        ..MediaInfo::default()
    };
    if !matches!(mime, "video/mp4" | "video/quicktime" | "audio/mp4") {
        return info;
    }
    // The parser reads outside bytes: a panic inside it is a corrupt file, not a crash.
    let read = std::panic::catch_unwind(|| read_mp4(path))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the MP4 parser failed on this file")));
    match read {
        Ok((started_at, duration_ms)) => {
            info.started_at = started_at;
            info.duration_ms = duration_ms;
        }
        Err(e) => info.problem = Some(format!("{name}: not a readable MP4 container: {e}")),
    }
    info
}

fn read_mp4(path: &Path) -> anyhow::Result<(Option<DateTime<Utc>>, Option<u64>)> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let reader = mp4::Mp4Reader::read_header(BufReader::new(file), size)?;
    let mvhd = &reader.moov.mvhd;
    let created = i64::try_from(mvhd.creation_time).unwrap_or(0);
    // 0 means "not set"; anything before 1970 is not a real recording time.
    let started_at = (created > MP4_EPOCH_OFFSET)
        .then(|| DateTime::from_timestamp(created - MP4_EPOCH_OFFSET, 0))
        .flatten();
    // A timescale of 0 is a corrupt header: no duration rather than a division by zero.
    let duration_ms = u128::from(mvhd.duration)
        .checked_mul(1000)
        .and_then(|d| d.checked_div(u128::from(mvhd.timescale)))
        .and_then(|d| u64::try_from(d).ok());
    Ok((started_at, duration_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_mp4_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        std::fs::write(&path, b"\0\0\0\x08junkjunkjunk").unwrap();
        let info = probe(&path, "x.mp4");
        assert_eq!(info.mime, "video/mp4");
        assert!(info.problem.unwrap().contains("not a readable MP4"));
        assert_eq!(info.duration_ms, None);
    }

    #[test]
    fn names_map_to_mime_types_case_insensitively() {
        assert_eq!(mime_for("A.MP4"), "video/mp4");
        assert_eq!(mime_for("photo.JPG"), "image/jpeg");
        assert_eq!(mime_for("weird.bin"), "application/octet-stream");
        assert!(is_event_file("e.JSON"));
    }
}
