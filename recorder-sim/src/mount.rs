//! The recorder's USB mass-storage volume (GA/T 947 `SetMSDC`), simulated
//! as a folder: while mass storage is on, each recording whose listed name
//! is plain (`evsync_recorder_protocol::volume`) appears there at that
//! relative path, hard-linked to (or, across file systems, copied from)
//! `files/<index>.bin`. Names that are not plain are not exposed, as a
//! real FAT volume could not hold them. A deletion over serial removes the
//! file from the volume too; mass storage off, an unplug or a stop empty it.
//!
//! Only paths this recorder put there (or, at start, paths its own
//! recordings would have) are ever removed, so a mistyped `--mount` cannot
//! cost anyone their files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use evsync_recorder_protocol::volume;

use crate::storage::Storage;

/// The volume folder and what is on it.
#[derive(Debug)]
pub struct Volume {
    dir: PathBuf,
    exposed: BTreeMap<u32, PathBuf>,
    /// Show this file index with one byte changed (a fault: a damaged volume).
    tamper: Option<u32>,
}

/// Where recording `name` lies under `dir`, if its name is plain.
pub fn path_of(dir: &Path, name: &str) -> Option<PathBuf> {
    volume::components(name)
        .ok()
        .map(|parts| parts.iter().fold(dir.to_owned(), |p, c| p.join(c)))
}

/// The file that marks a folder as a volume this simulator made.
pub const MARKER: &str = ".evsync-volume";

impl Volume {
    /// The volume at `dir` (created if missing), emptied of anything
    /// `storage`'s recordings would have left there.
    pub fn new(dir: &Path, storage: &Storage, tamper: Option<u32>) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the mass-storage folder {}", dir.display()))?;
        // Only a folder this simulator made is ever emptied: a mistyped
        // --mount must not cost anyone their files.
        let marker = dir.join(MARKER);
        let foreign = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
            && !marker.is_file();
        anyhow::ensure!(
            !foreign,
            "--mount {}: the folder holds files this recorder did not put there; expected an empty folder (or one it made, with {MARKER})",
            dir.display()
        );
        fs::write(&marker, b"evsync-recorder-sim mass-storage volume\n")
            .with_context(|| format!("writing {}", marker.display()))?;
        let mut v = Self {
            dir: dir.to_owned(),
            exposed: BTreeMap::new(),
            tamper,
        };
        for f in &storage.manifest.files {
            if let Some(p) = path_of(dir, &f.name) {
                v.exposed.insert(f.index, p);
            }
        }
        v.clear();
        Ok(v)
    }

    /// Mass storage on: every recording with a plain name appears.
    pub fn expose(&mut self, storage: &Storage) -> anyhow::Result<usize> {
        self.clear();
        for f in &storage.manifest.files {
            let Some(path) = path_of(&self.dir, &f.name) else {
                continue;
            };
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let blob = storage.blob(f.index);
            let _ = fs::remove_file(&path);
            if self.tamper == Some(f.index) {
                let mut bytes =
                    fs::read(&blob).with_context(|| format!("reading {}", blob.display()))?;
                let mid = bytes.len() / 2;
                if let Some(b) = bytes.get_mut(mid) {
                    *b ^= 0x5a;
                }
                fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            } else if fs::hard_link(&blob, &path).is_err() {
                fs::copy(&blob, &path)
                    .with_context(|| format!("copying {} to {}", blob.display(), path.display()))?;
            }
            self.exposed.insert(f.index, path);
        }
        Ok(self.exposed.len())
    }

    /// Recording `index` was deleted: it leaves the volume too.
    pub fn remove(&mut self, index: u32) {
        if let Some(path) = self.exposed.remove(&index) {
            self.unlink(&path);
        }
    }

    /// Mass storage off (or the recorder unplugged): the volume is empty.
    pub fn clear(&mut self) {
        for path in std::mem::take(&mut self.exposed).into_values() {
            self.unlink(&path);
        }
    }

    /// Removes `path` and the folders above it (up to the volume) it leaves empty.
    fn unlink(&self, path: &Path) {
        let _ = fs::remove_file(path);
        let mut at = path.parent();
        while let Some(dir) = at.filter(|d| *d != self.dir && d.starts_with(&self.dir)) {
            if fs::remove_dir(dir).is_err() {
                break;
            }
            at = dir.parent();
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use evsync_recorder_protocol::message::{Answer, Request};

    use super::*;
    use crate::device::Device;
    use crate::faults::Faults;

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == MARKER) {
                    continue;
                } else {
                    let rel = p.strip_prefix(dir).unwrap();
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    fn recorder(dir: &Path, names: &[&str], tamper: Option<u32>) -> Device {
        let mut storage = Storage::open(&dir.join("rec"), "ZFY0009").unwrap();
        let src = dir.join("src.bin");
        for (i, name) in names.iter().enumerate() {
            fs::write(&src, format!("recording {i}").repeat(100)).unwrap();
            let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
                .unwrap()
                .and_hms_opt(8, 0, 0)
                .unwrap();
            storage.add(&src, name, t, false).unwrap();
        }
        let faults = Faults {
            mount_tamper_index: tamper,
            ..Faults::default()
        };
        let mut d = Device::new(storage, faults, 512)
            .with_mount(&dir.join("vol"))
            .unwrap();
        let ok = d.handle(&Request::InitDevice {
            password: *b"000000",
        });
        assert!(matches!(ok, Answer::Ok(_)), "{ok:?}");
        d
    }

    #[test]
    fn mass_storage_shows_plain_names_only_and_empties_when_switched_off() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        let mut d = recorder(
            tmp.path(),
            &[
                "ZFY0009_20261123080000_0001.MP4",
                "../../escape.MP4",
                "/abs.MP4",
                "DCIM/100/VID_0003.MP4",
                "ctl\u{1b}.MP4",
            ],
            None,
        );
        assert!(files_under(&vol).is_empty(), "nothing before SetMSDC");
        assert!(matches!(
            d.handle(&Request::SetMsdc { on: true }),
            Answer::Ok(_)
        ));
        assert_eq!(
            files_under(&vol),
            ["DCIM/100/VID_0003.MP4", "ZFY0009_20261123080000_0001.MP4"]
        );
        assert_eq!(
            fs::read(vol.join("DCIM/100/VID_0003.MP4")).unwrap(),
            fs::read(d.storage.blob(4)).unwrap()
        );
        assert!(!tmp.path().join("escape.MP4").exists());
        // Deleted over serial: gone from the volume, with the folders it leaves empty.
        let size = d.storage.size(4).unwrap();
        let del = Request::DeleteFile {
            index: 4,
            size,
            name: "DCIM/100/VID_0003.MP4".into(),
        };
        assert!(matches!(d.handle(&del), Answer::Ok(_)));
        assert_eq!(files_under(&vol), ["ZFY0009_20261123080000_0001.MP4"]);
        assert!(!vol.join("DCIM").exists());
        assert!(matches!(
            d.handle(&Request::SetMsdc { on: false }),
            Answer::Ok(_)
        ));
        assert!(files_under(&vol).is_empty());
        // On again, then unplugged.
        d.handle(&Request::SetMsdc { on: true });
        assert_eq!(files_under(&vol).len(), 1);
        d.unmount();
        assert!(files_under(&vol).is_empty());
    }

    #[test]
    fn a_damaged_volume_shows_other_bytes_than_the_recording() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = recorder(tmp.path(), &["A.MP4", "B.MP4"], Some(2));
        d.handle(&Request::SetMsdc { on: true });
        let vol = tmp.path().join("vol");
        assert_eq!(
            fs::read(vol.join("A.MP4")).unwrap(),
            fs::read(d.storage.blob(1)).unwrap()
        );
        let shown = fs::read(vol.join("B.MP4")).unwrap();
        let real = fs::read(d.storage.blob(2)).unwrap();
        assert_eq!(shown.len(), real.len());
        assert_ne!(shown, real);
    }

    #[test]
    fn a_folder_holding_someone_elses_files_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        fs::create_dir_all(&vol).unwrap();
        fs::write(vol.join("someone-elses.txt"), "keep").unwrap();
        fs::write(vol.join("A.MP4"), "theirs").unwrap();
        let storage = Storage::open(&tmp.path().join("rec"), "ZFY0009").unwrap();
        let e = Device::new(storage, Faults::default(), 512)
            .with_mount(&vol)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("did not put there"), "{e}");
        assert_eq!(files_under(&vol), ["A.MP4", "someone-elses.txt"]);
        assert_eq!(fs::read_to_string(vol.join("A.MP4")).unwrap(), "theirs");
        // A folder it made is used again (a restarted recorder).
        let other = tempfile::tempdir().unwrap();
        drop(recorder(other.path(), &["B.MP4"], None));
        drop(recorder(other.path(), &[], None));
    }
}
