//! Key files on disk: created at first run with mode 0600, refused if anyone
//! but the owner can read them. This is the only I/O in the protocol crate;
//! it lives here because agent and hub keep their keys the same way.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::signing::SigningKey;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, creating or syncing the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is readable by group or others.
    #[error("key file {path} has mode {mode:o}: expected 600 (readable by its owner only)")]
    Permissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold an Ed25519 PKCS#8 key.
    #[error("key file {path}: {source}")]
    Invalid {
        /// The key file.
        path: String,
        /// What was wrong.
        source: crate::ProtocolError,
    },
}

/// Loads the key at `path`, or creates one there (mode 0600) if none exists.
/// Returns the key and whether it was created now.
pub fn load_or_create(path: &Path) -> Result<(SigningKey, bool), KeyFileError> {
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: shown.clone(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions { path: shown, mode });
            }
            let der = fs::read(path).map_err(io)?;
            let key = SigningKey::from_pkcs8(&der).map_err(|source| KeyFileError::Invalid {
                path: shown,
                source,
            })?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(io)?;
            }
            let der = SigningKey::generate_pkcs8().map_err(|source| KeyFileError::Invalid {
                path: shown.clone(),
                source,
            })?;
            let tmp = path.with_extension("key.tmp");
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(&der).map_err(io)?;
            f.sync_all().map_err(io)?;
            fs::rename(&tmp, path).map_err(io)?;
            let key = SigningKey::from_pkcs8(&der).map_err(|source| KeyFileError::Invalid {
                path: shown,
                source,
            })?;
            Ok((key, true))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_written_with_mode_0600_and_loads_again_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/device.key");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public(), again.public());
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("expected 600"), "{err}");
    }
}
