//! Confining devices on an external Mosquitto broker: a password file
//! with each agent's credential (and the hub's), and an ACL that lets each
//! agent publish and subscribe only under its own `evsync/v1/<device-id>/`
//! topics — docks may also read recorders' config topics — while the hub
//! reads and writes everything. Written by `evsync-hub broker mosquitto`
//! from the store; Mosquitto reads both again on SIGHUP.
//!
//! Secrets are 256 random bits, shown once when issued; only Mosquitto's
//! salted PBKDF2-SHA512 hash of each is kept (its `$7$` form), so the
//! files hold nothing that lets anyone connect.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

use crate::store::{BrokerUser, DeviceKind};

/// PBKDF2 iterations of the hashes written (Mosquitto's own default). The
/// secrets are 256 random bits: the hash's cost is not what protects them.
const ITERATIONS: u32 = 101;

/// A new secret: 32 random bytes, base64url.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(B64URL.encode(bytes))
}

/// Mosquitto's `$7$` password hash of `secret` with a fresh salt.
pub fn password_hash(secret: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 12];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(hash_with(secret, &salt))
}

fn hash_with(secret: &str, salt: &[u8]) -> String {
    let mut out = [0u8; 64];
    let iterations = std::num::NonZeroU32::new(ITERATIONS).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        salt,
        secret.as_bytes(),
        &mut out,
    );
    format!("$7${ITERATIONS}${}${}", B64.encode(salt), B64.encode(out))
}

/// Whether `secret` is the one `hash` (Mosquitto's `$7$` form) was made
/// from; a hash of another form matches nothing. Constant-time comparison (ring).
pub fn verify(secret: &str, hash: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(iter), Some(salt), Some(out), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iterations), Ok(salt), Ok(out)) = (
        iter.parse::<u32>().ok().and_then(std::num::NonZeroU32::new),
        B64.decode(salt),
        B64.decode(out),
    ) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        &salt,
        secret.as_bytes(),
        &out,
    )
    .is_ok()
}

/// The hub's own broker secret in `path`, created (0600) at first use.
pub fn hub_secret(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => anyhow::bail!(
            "{} is empty: delete it to have a new secret made",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret = new_secret()?;
    write_private(path, format!("{secret}\n").as_bytes())?;
    Ok(secret)
}

/// Writes `<dir>/passwd` and `<dir>/acl` for `users` and the hub (user
/// `hub_user` with `hub_secret`), each replaced whole (a reader never sees
/// half a file). Returns their paths.
pub fn write_files(
    dir: &Path,
    hub_user: &str,
    hub_secret: &str,
    users: &[BrokerUser],
) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut passwd = format!("{hub_user}:{}\n", password_hash(hub_secret)?);
    let mut acl = format!(
        "# Written by evsync-hub broker mosquitto: write it again after issuing or revoking\n\
         # credentials, then send Mosquitto SIGHUP.\n\n\
         # The hub reads and writes every device's topics.\n\
         user {hub_user}\ntopic readwrite evsync/v1/#\n\n"
    );
    for u in users {
        passwd.push_str(&format!("{}:{}\n", u.device_id, u.password_hash));
        if u.kind == DeviceKind::Dock {
            // A dock applies the configuration of whichever recorder is docked in it.
            acl.push_str(&format!(
                "user {}\ntopic read evsync/v1/+/config\n\n",
                u.device_id
            ));
        }
    }
    acl.push_str("# Every agent: its own topics only (%u is its user name, its device id).\n");
    acl.push_str("pattern readwrite evsync/v1/%u/#\n");
    let (passwd_path, acl_path) = (dir.join("passwd"), dir.join("acl"));
    write_private(&passwd_path, passwd.as_bytes())?;
    write_private(&acl_path, acl.as_bytes())?;
    Ok((passwd_path, acl_path))
}

/// The listeners of a generated `mosquitto.conf`.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    /// TLS listener: its port and the folder holding `ca.pem`, `server.pem`
    /// and `server.key` (as `evsync-hub broker tls-init` writes them).
    pub tls: Option<(u16, PathBuf)>,
    /// A plain TCP listener's port; only when asked for.
    pub plain: Option<u16>,
    /// Address every listener binds to; all interfaces when `None`.
    pub bind: Option<String>,
}

/// Writes `<dir>/mosquitto.conf`: no anonymous clients, the password file
/// and ACL of [`write_files`] for every listener, and the listeners asked
/// for. TLS needs no client certificate: agents authenticate with their
/// secret, over the encrypted connection.
pub fn write_conf(dir: &Path, listeners: &Listeners) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        listeners.tls.is_some() || listeners.plain.is_some(),
        "mosquitto.conf: expected a TLS port, a plain port, or both"
    );
    let abs = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let bind = listeners
        .bind
        .as_deref()
        .map(|b| format!(" {b}"))
        .unwrap_or_default();
    let mut conf = format!(
        "# Written by evsync-hub broker mosquitto. Every listener: no anonymous clients,\n\
         # each agent's credential and its own topics only.\n\
         per_listener_settings false\nallow_anonymous false\n\
         password_file {}\nacl_file {}\n",
        abs.join("passwd").display(),
        abs.join("acl").display()
    );
    if let Some((port, tls_dir)) = &listeners.tls {
        let tls = std::path::absolute(tls_dir)
            .with_context(|| format!("resolving {}", tls_dir.display()))?;
        for f in ["ca.pem", "server.pem", "server.key"] {
            anyhow::ensure!(
                tls.join(f).is_file(),
                "--tls-dir {}: no {f} in it (`evsync-hub broker tls-init` makes it)",
                tls.display()
            );
        }
        conf.push_str(&format!(
            "\n# MQTT over TLS (agents: mqtt.url = \"mqtts://host:{port}\", mqtt.ca_file = ca.pem)\n\
             listener {port}{bind}\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate false\ntls_version tlsv1.2\n",
            tls.join("ca.pem").display(),
            tls.join("server.pem").display(),
            tls.join("server.key").display()
        ));
    }
    if let Some(port) = listeners.plain {
        conf.push_str(&format!(
            "\n# Plain TCP, unencrypted: asked for with --plain-port\nlistener {port}{bind}\n"
        ));
    }
    let path = dir.join("mosquitto.conf");
    write_private(&path, conf.as_bytes())?;
    Ok(path)
}

/// Writes `bytes` to `path` (0600) through a temporary file renamed over it.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_mosquittos_pbkdf2_sha512_form() {
        // mosquitto_passwd -b wrote `dock-1:$7$101$gKUrrnU04Bm9Rqr9$ARVU…` for "s3cret".
        let salt = B64.decode("gKUrrnU04Bm9Rqr9").unwrap();
        assert_eq!(
            hash_with("s3cret", &salt),
            "$7$101$gKUrrnU04Bm9Rqr9$ARVUUl0CUkh79BrGEcL2xPiwXcUda6Io8O6kH/rEzTv7q0S+HAlSFV/j1LxhdPGI3CLiWJWj8DxtFBVrkWc7DA=="
        );
        let a = password_hash("s3cret").unwrap();
        assert_ne!(
            a,
            password_hash("s3cret").unwrap(),
            "a fresh salt each time"
        );
        assert_eq!(new_secret().unwrap().len(), 43);
        assert!(verify("s3cret", &a));
        assert!(!verify("s3cret2", &a));
        assert!(!verify("s3cret", "$6$x$y"));
        assert!(!verify("s3cret", "plain"));
    }

    #[test]
    fn the_files_confine_each_agent_to_its_topics_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let users = [
            BrokerUser {
                device_id: "dock-1".into(),
                kind: DeviceKind::Dock,
                password_hash: "$7$101$c2FsdA==$aGFzaA==".into(),
            },
            BrokerUser {
                device_id: "field-1".into(),
                kind: DeviceKind::Field,
                password_hash: "$7$101$c2FsdA==$aGFzaA==".into(),
            },
        ];
        let (passwd, acl) = write_files(dir.path(), "evsync-hub-1", "x", &users).unwrap();
        let p = std::fs::read_to_string(&passwd).unwrap();
        assert!(p.starts_with("evsync-hub-1:$7$101$"), "{p}");
        assert!(p.contains("\ndock-1:$7$101$c2FsdA==$aGFzaA==\n"), "{p}");
        let a = std::fs::read_to_string(&acl).unwrap();
        assert!(
            a.contains("user evsync-hub-1\ntopic readwrite evsync/v1/#\n"),
            "{a}"
        );
        assert!(
            a.contains("user dock-1\ntopic read evsync/v1/+/config\n"),
            "{a}"
        );
        assert!(!a.contains("user field-1"), "{a}");
        assert!(a.ends_with("pattern readwrite evsync/v1/%u/#\n"), "{a}");
        let tls = tempfile::tempdir().unwrap();
        crate::tls::init(tls.path(), &["localhost".into()]).unwrap();
        let only_tls = Listeners {
            tls: Some((8883, tls.path().to_owned())),
            plain: None,
            bind: Some("127.0.0.1".into()),
        };
        let c = std::fs::read_to_string(write_conf(dir.path(), &only_tls).unwrap()).unwrap();
        assert!(c.contains("allow_anonymous false\n"), "{c}");
        assert!(c.contains("\nlistener 8883 127.0.0.1\ncafile "), "{c}");
        assert!(c.contains("require_certificate false\n"), "{c}");
        assert_eq!(
            c.matches("\nlistener ").count(),
            1,
            "no plain listener unasked: {c}"
        );
        for f in [passwd, acl] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
}
