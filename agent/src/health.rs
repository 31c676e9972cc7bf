//! The device's own health for its heartbeat: free and total storage of
//! the folder the agent keeps its buffer and copies in (what decides when it
//! must stop taking files), and the battery charge where the system reports
//! one (a field device's; a dock on mains power has none).

use std::path::Path;

/// What the heartbeat reports about the device itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Bytes free to the agent on the data folder's file system.
    pub storage_free_bytes: Option<u64>,
    /// Size of that file system.
    pub storage_total_bytes: Option<u64>,
    /// Battery charge, percent, from the first battery the system lists.
    pub battery_pct: Option<u8>,
}

/// Reads the health of the device whose agent keeps its data in `data_dir`.
// statvfs's field widths differ between platforms (u64 here, u32 on some).
#[allow(clippy::unnecessary_cast)]
pub fn read(data_dir: &Path) -> Health {
    let (free, total) = match nix::sys::statvfs::statvfs(data_dir) {
        Ok(s) => {
            let unit = s.fragment_size() as u64;
            (
                Some(s.blocks_available() as u64 * unit),
                Some(s.blocks() as u64 * unit),
            )
        }
        Err(e) => {
            tracing::debug!(error = %e, dir = %data_dir.display(), "cannot read the file system's size");
            (None, None)
        }
    };
    Health {
        storage_free_bytes: free,
        storage_total_bytes: total,
        battery_pct: battery(Path::new("/sys/class/power_supply")),
    }
}

/// The charge of the first battery under `power_supply` (Linux sysfs:
/// `<name>/type` is `Battery`, `<name>/capacity` is 0..=100).
fn battery(power_supply: &Path) -> Option<u8> {
    let mut names: Vec<_> = std::fs::read_dir(power_supply)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    names.into_iter().find_map(|dir| {
        let kind = std::fs::read_to_string(dir.join("type")).ok()?;
        if kind.trim() != "Battery" {
            return None;
        }
        let pct: u8 = std::fs::read_to_string(dir.join("capacity"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (pct <= 100).then_some(pct)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_battery_is_read_and_mains_adapters_and_nonsense_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let supply = |name: &str, kind: &str, capacity: Option<&str>| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            if let Some(c) = capacity {
                std::fs::write(d.join("capacity"), format!("{c}\n")).unwrap();
            }
        };
        assert_eq!(battery(dir.path()), None);
        supply("AC", "Mains", None);
        supply("BAT0", "Battery", Some("250"));
        assert_eq!(
            battery(dir.path()),
            None,
            "a capacity over 100 is not a charge"
        );
        supply("BAT1", "Battery", Some("76"));
        assert_eq!(battery(dir.path()), Some(76));
        assert_eq!(battery(&dir.path().join("missing")), None);
    }

    #[test]
    fn the_data_folder_s_file_system_has_a_size() {
        let dir = tempfile::tempdir().unwrap();
        let h = read(dir.path());
        let (free, total) = (
            h.storage_free_bytes.unwrap(),
            h.storage_total_bytes.unwrap(),
        );
        assert!(total > 0 && free <= total, "{h:?}");
    }
}
