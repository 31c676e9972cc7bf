//! TLS of the agent's two connections to the hub: MQTT over TLS
//! (`mqtts://`) and HTTPS uploads. Both trust exactly the certificate
//! authorities in a PEM file the configuration names (`mqtt.ca_file`,
//! `upload.ca_file`) — typically the CA `evsync-hub broker tls-init` made —
//! and nothing else. rustls with the ring provider; no system roots.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// The ring crypto provider every TLS configuration of evsync uses.
///
/// rustls 0.23.48 deprecates it for lacking post-quantum key exchange; the
/// alternative (aws-lc-rs) needs a C toolchain and CMake on every dock,
/// and ring is already the project's crypto library (SPEC.md). Revisit when
/// ring gains ML-KEM or docks can build aws-lc.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file `path`; at least one.
pub fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{}: cannot read it as PEM certificates", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: a certificate does not parse", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no certificate in it; expected PEM `-----BEGIN CERTIFICATE-----`",
        path.display()
    );
    Ok(certs)
}

/// A TLS client configuration trusting only the CAs in `ca_file`.
pub fn client_config(ca_file: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca_file)? {
        roots
            .add(cert)
            .with_context(|| format!("{}: not a usable CA certificate", ca_file.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether `url` asks for MQTT over TLS.
pub fn is_mqtts(url: &str) -> bool {
    url.starts_with("mqtts://")
}

/// `url` as rumqttc's `MqttOptions::parse_url` should read it: an
/// `mqtts://` URL as `mqtt://`, so that parsing does not build a TLS
/// configuration from the system's roots; [`mqtt_transport`] then sets
/// the one that trusts the configured CA. (`mqtts://` needs an explicit port.)
pub fn parse_url_form(url: &str) -> String {
    match url.strip_prefix("mqtts://") {
        Some(rest) => format!("mqtt://{rest}"),
        None => url.to_owned(),
    }
}

/// Sets the transport of `opts` for `url`: TLS trusting `ca_file` for
/// `mqtts://` (which then requires a CA file), plain TCP otherwise.
pub fn mqtt_transport(
    opts: &mut MqttOptions,
    url: &str,
    ca_file: Option<&Path>,
    field: &str,
) -> anyhow::Result<()> {
    if !is_mqtts(url) {
        return Ok(());
    }
    let ca = ca_file.with_context(|| {
        format!("{field}.url = {url:?} is mqtts://: {field}.ca_file must name the broker's CA certificate (PEM)")
    })?;
    let config = client_config(ca).with_context(|| format!("{field}.ca_file"))?;
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    Ok(())
}

/// A ureq TLS configuration trusting only the CAs in `ca_file`; without
/// one, none at all, so that an `https://` URL fails with a certificate
/// error (ureq's defaults would panic: no system roots are compiled in).
pub fn http_tls(ca_file: Option<&Path>) -> anyhow::Result<ureq::tls::TlsConfig> {
    let certs = match ca_file {
        Some(ca) => certificates(ca)?
            .into_iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
        None => Vec::new(),
    };
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
        .unversioned_rustls_crypto_provider(provider())
        .build())
}
