//! TLS on the hub's side: the server configuration of the embedded
//! broker's listener and of the HTTPS API (rustls, ring provider), the
//! accept loop that puts the API behind it, and `evsync-hub broker
//! tls-init`, which makes a private CA and a server certificate signed by
//! it for a deployment that has none. Private keys are written 0600 and
//! never logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::PrivateKeyDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A TLS server configuration from a certificate chain and its private key (PEM files).
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = evsync_agent::tls::certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "{}: expected a PEM private key (PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(evsync_agent::tls::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| {
            format!(
                "{} and {}: the key does not match the certificate, or is of an unsupported kind",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// The API's listener over TLS, for `axum::serve`: handshakes run in their
/// own tasks (a slow or silent client holds up no one) and at most 10 s;
/// failed ones are logged at debug level and dropped.
pub struct HttpsListener {
    local: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl HttpsListener {
    /// Serves TLS on `listener` with `config`; the accept loop ends when the
    /// returned listener is dropped.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> anyhow::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = tx.closed() => return,
                    r = listener.accept() => match r {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "HTTPS accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(tcp),
                    )
                    .await;
                    match hs {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, accepted })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(a) => a,
            // The accept loop lives as long as this listener: never reached.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What `tls-init` wrote.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate agents trust (`mqtt.ca_file`, `upload.ca_file`).
    pub ca_cert: PathBuf,
    /// The CA's private key: keep it offline; it signs further server certificates.
    pub ca_key: PathBuf,
    /// The server certificate (for the broker and the API).
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
}

/// Makes a private CA and a server certificate signed by it, valid for
/// `names` (DNS names or IP addresses), in `dir`: `ca.pem`, `ca.key`,
/// `server.pem`, `server.key` (keys 0600). Refuses to overwrite.
pub fn init(dir: &Path, names: &[String]) -> anyhow::Result<TlsFiles> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    anyhow::ensure!(!names.is_empty(), "expected at least one server name");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    for f in [
        &files.ca_cert,
        &files.ca_key,
        &files.server_cert,
        &files.server_key,
    ] {
        anyhow::ensure!(
            !f.exists(),
            "{} exists: tls-init does not overwrite keys; choose another folder",
            f.display()
        );
    }
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca.distinguished_name
        .push(DnType::CommonName, "evsync private CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca
        .self_signed(&ca_key)
        .context("signing the CA certificate")?;

    let server_key = KeyPair::generate().context("generating the server key")?;
    let mut server = CertificateParams::new(names.to_vec())
        .with_context(|| format!("server names {names:?}: expected DNS names or IP addresses"))?;
    server
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .context("signing the server certificate")?;

    write_file(&files.ca_key, ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(
        &files.server_key,
        server_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&files.ca_cert, ca_cert.pem().as_bytes(), 0o644)?;
    write_file(&files.server_cert, server_cert.pem().as_bytes(), 0o644)?;
    Ok(files)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_init_makes_a_ca_and_a_server_certificate_that_load_with_private_keys() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let f = init(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        server_config(&f.server_cert, &f.server_key).unwrap();
        evsync_agent::tls::client_config(&f.ca_cert).unwrap();
        for k in [&f.ca_key, &f.server_key] {
            let mode = std::fs::metadata(k).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", k.display());
        }
        let err = init(dir.path(), &["localhost".into()]).unwrap_err();
        assert!(err.to_string().contains("does not overwrite"), "{err}");
        let err = server_config(&f.server_cert, &f.ca_key).unwrap_err();
        assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    }
}
