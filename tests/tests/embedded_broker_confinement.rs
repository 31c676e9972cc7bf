//! Issue 8, item 4 (transport security) on the embedded broker: with
//! `mqtt.require_auth`, the hub's guard in front of rumqttd lets in only
//! enrolled agents with their own credential, confines each to its own
//! `evsync/v1/<device-id>/` topics (docks may also read recorders'
//! configuration), drops a connected agent once revoked,
//! refuses MQTT 5 clients clearly (it reads 3.1.1 only), and with
//! `mqtt.require_tls` refuses clients without TLS — every refusal
//! counted in `/metrics` by reason. An enrolled agent syncs through it (over
//! TLS in the second test). SPEC.md guarantee 5 (unknown devices and revoked
//! keys get a clear refusal, never a crash).

use std::path::Path;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_hub::store::{DeviceKind, DeviceState, Store};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, Packet, QoS};

/// Issues field device `id` a broker credential in the hub's store; returns the secret.
fn enroll(cfg: &evsync_hub::config::HubConfig, id: &str) -> anyhow::Result<String> {
    enroll_as(cfg, id, DeviceKind::Field)
}

fn enroll_as(
    cfg: &evsync_hub::config::HubConfig,
    id: &str,
    kind: DeviceKind,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let secret = evsync_hub::mosquitto::new_secret()?;
    let hash = evsync_hub::mosquitto::password_hash(&secret)?;
    Store::connect(&cfg.store_location())?.set_credential(id, kind, &hash, "test")?;
    Ok(secret)
}

fn revoke(cfg: &evsync_hub::config::HubConfig, id: &str) -> anyhow::Result<()> {
    Store::connect(&cfg.store_location())?.set_device_state(id, DeviceState::Revoked)?;
    Ok(())
}

/// Connects to `url` as `client_id` with `login`, over TLS trusting
/// `ca` when given: the client once connected, or the refusal code.
async fn connect(
    url: &str,
    client_id: &str,
    login: Option<(&str, &str)>,
    ca: Option<&Path>,
) -> anyhow::Result<Result<(AsyncClient, EventLoop), ConnectReturnCode>> {
    let mut opts = evsync_hub::link::options(url, client_id, 1 << 20, ca)?;
    opts.set_clean_session(true);
    if let Some((u, s)) = login {
        opts.set_credentials(u, s);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let code = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Ok(code),
                Err(e) => return Err(anyhow::anyhow!("connecting as {client_id}: {e}")),
            }
        }
    })
    .await??;
    Ok(match code {
        ConnectReturnCode::Success => Ok((client, eventloop)),
        code => Err(code),
    })
}

/// Whether the broker ends this connection within `within`.
async fn dropped(eventloop: &mut EventLoop, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    })
    .await
    .is_ok()
}

async fn refusals(api: &Api, reason: &str) -> anyhow::Result<f64> {
    api.metric(&format!(
        "evsync_hub_broker_refusals_total{{reason=\"{reason}\"}}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_is_confined_to_its_own_topics_and_every_refusal_is_counted(
) -> anyhow::Result<()> {
    let dir = test_dir("embedded-confinement")?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.mqtt.require_auth = true;
    let (a, b, c, r) = (
        unique("field-a"),
        unique("field-b"),
        unique("field-c"),
        unique("field-r"),
    );
    let secret_a = enroll(&cfg, &a)?;
    let secret_b = enroll(&cfg, &b)?;
    let secret_c = enroll(&cfg, &c)?;
    let secret_r = enroll(&cfg, &r)?;
    let dock = unique("dock");
    let secret_dock = enroll_as(&cfg, &dock, DeviceKind::Dock)?;
    revoke(&cfg, &r)?;
    let hub = Hub::start(cfg.clone()).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let url = hub.mqtt_url.clone();
    assert!(url.starts_with("mqtt://"), "{url}");

    // An enrolled agent with its own credential syncs on its own topics.
    let mut agent_cfg = agent_config(dir.path(), &a, &url, &hub.public_key);
    give_secret(&mut agent_cfg, dir.path(), &secret_a)?;
    drop_events(&agent_cfg.spool_dir, 0, 3)?;
    let agent = Agent::start(agent_cfg).await?;
    eventually(
        Duration::from_secs(30),
        "a's 3 records in the feed",
        || async { Ok(api.feed().await?.len() == 3) },
    )
    .await?;

    // Refused at connection, each with its reason.
    assert_eq!(
        connect(&url, &b, Some((&b, &secret_a)), None).await?.err(),
        Some(ConnectReturnCode::BadUserNamePassword),
        "another device's id with one's own secret"
    );
    assert_eq!(
        connect(&url, &b, Some((&a, &secret_a)), None).await?.err(),
        Some(ConnectReturnCode::BadClientId),
        "one's own credential under another device's client id"
    );
    let stranger = unique("field-x");
    assert_eq!(
        connect(&url, &stranger, Some((&stranger, &secret_a)), None)
            .await?
            .err(),
        Some(ConnectReturnCode::NotAuthorized),
        "an unenrolled client"
    );
    assert_eq!(
        connect(&url, &stranger, None, None).await?.err(),
        Some(ConnectReturnCode::BadUserNamePassword),
        "no credentials"
    );
    assert_eq!(
        connect(&url, &r, Some((&r, &secret_r)), None).await?.err(),
        Some(ConnectReturnCode::NotAuthorized),
        "a revoked credential"
    );

    // MQTT 5 is refused clearly (the guard reads 3.1.1 only).
    let addr = hub.mqtt_url.trim_start_matches("mqtt://").to_owned();
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("{addr}"))?;
    let mut v5 = rumqttc::v5::MqttOptions::new(a.clone(), host, port.parse()?);
    v5.set_credentials(a.clone(), secret_a.clone());
    let (_v5_client, mut v5_events) = rumqttc::v5::AsyncClient::new(v5, 4);
    let v5_connected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match v5_events.poll().await {
                Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(
                    ack,
                ))) => return ack.code == rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(
        !v5_connected,
        "an MQTT 5 client connected through the guard"
    );

    // Publishing or subscribing under another device's topics ends the connection.
    let (client, mut events) = connect(&url, &b, Some((&b, &secret_b)), None)
        .await?
        .map_err(|code| anyhow::anyhow!("{b} refused: {code:?}"))?;
    client
        .publish(
            format!("evsync/v1/{a}/records"),
            QoS::AtLeastOnce,
            false,
            b"forged".to_vec(),
        )
        .await?;
    assert!(
        dropped(&mut events, Duration::from_secs(5)).await,
        "a foreign publish let through"
    );
    let (client, mut events) = connect(&url, &b, Some((&b, &secret_b)), None)
        .await?
        .map_err(|code| anyhow::anyhow!("{b} refused: {code:?}"))?;
    client
        .subscribe(format!("evsync/v1/{b}/receipts"), QoS::AtLeastOnce)
        .await?;
    assert!(
        !dropped(&mut events, Duration::from_millis(500)).await,
        "its own subscription refused"
    );
    client
        .subscribe("evsync/v1/+/receipts", QoS::AtLeastOnce)
        .await?;
    assert!(
        dropped(&mut events, Duration::from_secs(5)).await,
        "a foreign subscription let through"
    );

    // A dock may also read recorders' configuration (it applies it to
    // whichever is docked), and nothing else of theirs.
    let (client, mut events) = connect(&url, &dock, Some((&dock, &secret_dock)), None)
        .await?
        .map_err(|code| anyhow::anyhow!("{dock} refused: {code:?}"))?;
    client
        .subscribe("evsync/v1/ZFY0001/config", QoS::AtLeastOnce)
        .await?;
    client
        .subscribe("evsync/v1/+/config", QoS::AtLeastOnce)
        .await?;
    assert!(
        !dropped(&mut events, Duration::from_millis(500)).await,
        "a dock refused recorders' configuration"
    );
    client
        .subscribe("evsync/v1/ZFY0001/receipts", QoS::AtLeastOnce)
        .await?;
    assert!(
        dropped(&mut events, Duration::from_secs(5)).await,
        "a dock read a recorder's receipts"
    );

    // A connected device revoked is dropped within the recheck interval.
    let (_client, mut events) = connect(&url, &c, Some((&c, &secret_c)), None)
        .await?
        .map_err(|code| anyhow::anyhow!("{c} refused: {code:?}"))?;
    revoke(&cfg, &c)?;
    assert!(
        dropped(&mut events, Duration::from_secs(12)).await,
        "a revoked device stayed connected"
    );
    assert_eq!(
        connect(&url, &c, Some((&c, &secret_c)), None).await?.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );

    for (reason, at_least) in [
        ("bad_credentials", 1.0),
        ("client_id_mismatch", 1.0),
        ("unknown_client", 1.0),
        ("no_credentials", 1.0),
        ("revoked", 3.0),
        ("foreign_topic", 3.0),
        ("mqtt5_unsupported", 1.0),
    ] {
        let n = refusals(&api, reason).await?;
        assert!(
            n >= at_least,
            "{reason}: counted {n}, expected at least {at_least}"
        );
    }
    // The agent was never disturbed: still connected, nothing refused of it.
    drop_events(&dir.path().join(&a).join("spool"), 3, 1)?;
    eventually(Duration::from_secs(30), "a's 4th record", || async {
        Ok(api.feed().await?.len() == 4)
    })
    .await?;
    agent.shutdown().await?;
    hub.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_tls_is_required_a_plain_client_is_refused_and_an_agent_syncs_over_tls(
) -> anyhow::Result<()> {
    let dir = test_dir("embedded-tls")?;
    let tls = evsync_hub::tls::init(&dir.path().join("tls"), &["127.0.0.1".into()])?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.mqtt.require_auth = true;
    cfg.mqtt.require_tls = true;
    cfg.mqtt.tls_cert = Some(tls.server_cert.clone());
    cfg.mqtt.tls_key = Some(tls.server_key.clone());
    let field = unique("field-tls");
    let secret = enroll(&cfg, &field)?;
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let url = hub.mqtt_url.clone();
    assert!(url.starts_with("mqtts://"), "{url}");

    // Plain TCP, even with a valid credential: refused and counted.
    let plain = url.replacen("mqtts://", "mqtt://", 1);
    assert_eq!(
        connect(&plain, &field, Some((&field, &secret)), None)
            .await?
            .err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert!(refusals(&api, "no_tls").await? >= 1.0);
    // TLS with a wrong secret: still refused.
    assert_eq!(
        connect(&url, &field, Some((&field, "wrong")), Some(&tls.ca_cert))
            .await?
            .err(),
        Some(ConnectReturnCode::BadUserNamePassword)
    );

    // The agent over mqtts, trusting the hub's CA, syncs.
    let mut agent_cfg = agent_config(dir.path(), &field, &url, &hub.public_key);
    give_secret(&mut agent_cfg, dir.path(), &secret)?;
    agent_cfg.mqtt.ca_file = Some(tls.ca_cert.clone());
    drop_events(&agent_cfg.spool_dir, 0, 5)?;
    let agent = Agent::start(agent_cfg).await?;
    eventually(
        Duration::from_secs(30),
        "the agent's 5 records over TLS",
        || async { Ok(api.feed().await?.len() == 5) },
    )
    .await?;
    agent.shutdown().await?;
    hub.shutdown().await?;
    Ok(())
}
