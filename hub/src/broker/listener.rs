//! The embedded broker's public listener: the hub's own acceptor in front
//! of rumqttd, which listens only on a loopback port and lets in only the
//! hub's in-memory secret. Per connection it takes TLS (or refuses plain
//! TCP where TLS is required), reads the client's CONNECT, asks the guard
//! (`super::guard`) who it is, connects to rumqttd on the client's behalf
//! with the hub's secret, and then relays bytes both ways, checking every
//! packet the client sends and dropping the client when its credential is
//! revoked. Each refusal is counted by reason and logged without secrets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnAck, Login, Packet};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::guard::{self, Credentials, Identity, Refusal};
use crate::metrics::Metrics;
use crate::store::Store;

/// Seconds between looks at the store for revoked and re-issued credentials.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Time a client has to finish TLS and send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the guard runs.
pub struct GuardConfig {
    /// rumqttd's loopback address.
    pub internal: SocketAddr,
    /// The user name and secret rumqttd lets in (the hub's, in memory only).
    pub internal_login: (String, String),
    /// Let in only enrolled agents, confined to their own topics.
    pub require_auth: bool,
    /// Refuse plain TCP.
    pub require_tls: bool,
    /// TLS of the listener, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Largest packet accepted.
    pub max_packet: usize,
}

/// The credentials issued, read from the store at start, every
/// [`RECHECK`], and whenever a client names a user not yet known or a
/// secret that does not match (it may just have been issued).
pub struct CredentialSource {
    store: Mutex<Store>,
    current: watch::Sender<Arc<Credentials>>,
    /// When the store was last read on a client's behalf: at most once a
    /// second, so failed logins cannot make the hub query its store at will.
    looked: Mutex<Option<std::time::Instant>>,
}

impl CredentialSource {
    /// Reads the credentials from `store`.
    pub fn new(store: Store) -> anyhow::Result<Arc<Self>> {
        let first = Credentials::new(store.broker_credentials()?);
        let (current, _) = watch::channel(Arc::new(first));
        Ok(Arc::new(Self {
            store: Mutex::new(store),
            current,
            looked: Mutex::new(None),
        }))
    }

    /// The latest snapshot, and a receiver told of each new one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Credentials>> {
        self.current.subscribe()
    }

    /// Reads the store again and publishes the snapshot.
    pub async fn reload(self: &Arc<Self>) -> anyhow::Result<Arc<Credentials>> {
        let this = self.clone();
        let all = tokio::task::spawn_blocking(move || {
            let store = this
                .store
                .lock()
                .map_err(|_| anyhow::anyhow!("the credential store lock is poisoned"))?;
            store.broker_credentials()
        })
        .await
        .context("reading broker credentials")??;
        let snapshot = Arc::new(Credentials::new(all));
        self.current.send_replace(snapshot.clone());
        Ok(snapshot)
    }

    /// A fresh snapshot for a client whose login the current one refuses,
    /// unless the store was read for a client less than a second ago.
    pub async fn reload_for_client(self: &Arc<Self>) -> anyhow::Result<Arc<Credentials>> {
        let due = {
            let mut looked = self
                .looked
                .lock()
                .map_err(|_| anyhow::anyhow!("the credential lookup lock is poisoned"))?;
            let due = looked.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                *looked = Some(std::time::Instant::now());
            }
            due
        };
        if due {
            self.reload().await
        } else {
            Ok(self.current.borrow().clone())
        }
    }

    /// Reloads every [`RECHECK`] until shutdown; a failed read is logged
    /// and the last snapshot kept.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = tokio::time::sleep(RECHECK) => {}
            }
            if let Err(e) = self.reload().await {
                tracing::warn!("reading broker credentials: {e:#}");
            }
        }
    }
}

/// What a connection is carried on: TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accepts clients on `listener` until shutdown, each in its own task.
pub async fn run(
    listener: TcpListener,
    cfg: Arc<GuardConfig>,
    creds: Arc<CredentialSource>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "broker accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (cfg, creds, metrics, shutdown) = (
            cfg.clone(),
            creds.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match serve(tcp, &cfg, &creds, shutdown).await {
                Ok(()) => {}
                Err(Ended::Refused(r, who)) => {
                    metrics.broker_refusal(r.reason());
                    tracing::info!(%peer, reason = r.reason(), client = %who, "broker refused a client");
                }
                Err(Ended::Failed(e)) => {
                    tracing::debug!(%peer, "broker connection ended: {e:#}");
                }
            }
        });
    }
}

/// How a connection ended other than by either side closing it.
enum Ended {
    /// The guard refused the client (named by its user name or client id, never its secret).
    Refused(Refusal, String),
    /// An I/O error, or rumqttd unreachable.
    Failed(anyhow::Error),
}

impl From<std::io::Error> for Ended {
    fn from(e: std::io::Error) -> Self {
        Ended::Failed(e.into())
    }
}

fn refused(r: Refusal) -> Ended {
    Ended::Refused(r, "-".into())
}

/// One client, from its first byte to the end of its session.
async fn serve(
    tcp: TcpStream,
    cfg: &GuardConfig,
    creds: &Arc<CredentialSource>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Ended> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(CONNECT_TIMEOUT, tcp.peek(&mut first))
        .await
        .map_err(|_| refused(Refusal::Timeout))??;
    if n == 0 {
        return Ok(());
    }
    // A TLS record starts with 0x16 (handshake); an MQTT CONNECT with 0x10.
    let mut client: Box<dyn Io> = match (first[0], &cfg.tls) {
        (0x16, Some(tls)) => Box::new(
            tokio::time::timeout(CONNECT_TIMEOUT, tls.accept(tcp))
                .await
                .map_err(|_| refused(Refusal::Timeout))?
                .map_err(|e| Ended::Failed(anyhow::anyhow!("TLS handshake: {e}")))?,
        ),
        (_, _) if cfg.require_tls => {
            let mut tcp = tcp;
            if first[0] == 0x10 {
                // Tell an MQTT client why (MQTT 3.1.1 §3.2.2.3: not authorized).
                let _ = tcp.write_all(&[0x20, 0x02, 0x00, 0x05]).await;
            }
            return Err(refused(Refusal::NoTls));
        }
        (_, _) => Box::new(tcp),
    };

    let mut buf = BytesMut::with_capacity(4096);
    let frame = tokio::time::timeout(
        CONNECT_TIMEOUT,
        read_frame(&mut client, &mut buf, cfg.max_packet),
    )
    .await
    .map_err(|_| refused(Refusal::Timeout))??;
    let Some(frame) = frame else { return Ok(()) };
    if frame.first().map(|b| b >> 4) != Some(1) {
        return Err(refused(Refusal::Malformed));
    }
    if guard::protocol_level(&frame) != Some(4) {
        let _ = write_connack(&mut client, Refusal::Mqtt5).await;
        return Err(refused(Refusal::Mqtt5));
    }
    let mut connect = match Packet::read(&mut BytesMut::from(&frame[..]), cfg.max_packet) {
        Ok(Packet::Connect(c)) => c,
        _ => return Err(refused(Refusal::Malformed)),
    };
    let name = connect
        .login
        .as_ref()
        .map_or_else(|| connect.client_id.clone(), |l| l.username.clone());
    let mut snapshot = creds.subscribe().borrow().clone();
    let mut outcome = guard::authenticate(&connect, &snapshot, cfg.require_auth);
    if matches!(
        outcome,
        Err(Refusal::UnknownClient | Refusal::BadCredentials | Refusal::Revoked)
    ) {
        // Issued or revoked since the last look: look again before refusing.
        snapshot = creds.reload_for_client().await.map_err(Ended::Failed)?;
        outcome = guard::authenticate(&connect, &snapshot, cfg.require_auth);
    }
    let who = match outcome {
        Ok(who) => who,
        Err(r) => {
            let _ = write_connack(&mut client, r).await;
            return Err(Ended::Refused(r, name));
        }
    };

    // To rumqttd as the hub, keeping the client's id, session and will.
    let mut broker = TcpStream::connect(cfg.internal)
        .await
        .with_context(|| format!("connecting to the embedded broker at {}", cfg.internal))
        .map_err(Ended::Failed)?;
    let _ = broker.set_nodelay(true);
    connect.login = Some(Login::new(
        cfg.internal_login.0.clone(),
        cfg.internal_login.1.clone(),
    ));
    let mut out = BytesMut::new();
    Packet::Connect(connect)
        .write(&mut out, usize::MAX)
        .map_err(|e| Ended::Failed(anyhow::anyhow!("encoding CONNECT: {e}")))?;
    broker.write_all(&out).await?;

    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    let down = tokio::io::copy(&mut broker_rx, &mut client_tx);
    let up = relay_up(
        &mut client_rx,
        &mut broker_tx,
        buf,
        &who,
        creds.subscribe(),
        cfg.max_packet,
        shutdown,
    );
    let result = tokio::select! {
        r = down => r.map(drop).map_err(Ended::from),
        r = up => r,
    };
    result.map_err(|e| match e {
        Ended::Refused(r, _) => Ended::Refused(r, name),
        other => other,
    })
}

/// Client to broker: whole packets only, each checked by the guard; ends
/// the connection on a refusal, on revocation, or at shutdown.
async fn relay_up(
    client: &mut (impl AsyncRead + Unpin),
    broker: &mut (impl AsyncWrite + Unpin),
    mut buf: BytesMut,
    who: &Identity,
    mut creds: watch::Receiver<Arc<Credentials>>,
    max: usize,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Ended> {
    loop {
        while let Some(frame) = next_frame(&mut buf, max)? {
            guard::check_packet(who, &frame, max).map_err(refused)?;
            broker.write_all(&frame).await?;
        }
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            changed = creds.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = creds.borrow_and_update().clone();
                guard::still_allowed(who, &now).map_err(refused)?;
            }
            n = client.read_buf(&mut buf) => {
                if n? == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// The next whole packet in `buf`, if there is one.
fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, Ended> {
    match rumqttc::mqttbytes::check(buf.iter(), max) {
        Ok(h) => Ok(Some(buf.split_to(h.frame_length()))),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(_) => Err(refused(Refusal::Malformed)),
    }
}

/// Reads until `buf` holds a whole packet; `None` if the client closed first.
async fn read_frame(
    client: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<BytesMut>, Ended> {
    loop {
        if let Some(frame) = next_frame(buf, max)? {
            return Ok(Some(frame));
        }
        if client.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_connack(client: &mut (impl AsyncWrite + Unpin), r: Refusal) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    if ConnAck::new(r.connack(), false).write(&mut out).is_ok() {
        client.write_all(&out).await?;
        client.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_whole_from_a_stream_that_arrives_in_pieces() {
        let mut stream = BytesMut::new();
        let mut ping_then_publish = vec![0xC0, 0x00];
        let mut publish = rumqttc::mqttbytes::v4::Publish::new(
            "evsync/v1/field-1/records",
            rumqttc::QoS::AtMostOnce,
            vec![1u8; 200],
        );
        publish.pkid = 0;
        let mut encoded = BytesMut::new();
        Packet::Publish(publish)
            .write(&mut encoded, 1 << 20)
            .unwrap();
        ping_then_publish.extend_from_slice(&encoded);
        stream.extend_from_slice(&ping_then_publish[..10]);
        assert_eq!(
            next_frame(&mut stream, 1 << 20).ok().flatten().as_deref(),
            Some(&[0xC0, 0x00][..])
        );
        assert!(
            next_frame(&mut stream, 1 << 20).ok().unwrap().is_none(),
            "half a publish"
        );
        stream.extend_from_slice(&ping_then_publish[10..]);
        let frame = next_frame(&mut stream, 1 << 20).ok().flatten().unwrap();
        assert_eq!(&frame[..], &encoded[..]);
        assert!(stream.is_empty());
        // Larger than allowed: refused before it is read.
        stream.extend_from_slice(&encoded);
        assert!(matches!(
            next_frame(&mut stream, 100),
            Err(Ended::Refused(Refusal::Malformed, _))
        ));
    }
}
