//! Issue 8, item 4 (transport security) on an external Mosquitto: the
//! `mosquitto.conf` that `evsync-hub broker mosquitto --tls-port` writes
//! serves MQTT over TLS only, with the certificates `broker tls-init`
//! made, and each agent's credential and ACL. A Mosquitto of the test's
//! own (skipped where there is no executable): the hub and an agent over
//! `mqtts://` trusting the private CA sync records end to end, while a
//! plain TCP client with a valid credential, and a TLS client that does
//! not trust the CA, get no connection.

use std::path::Path;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet};

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

/// Whether a client reaches CONNACK Success at `url` as `user`.
async fn connects(url: &str, user: (&str, &str), ca: Option<&Path>) -> anyhow::Result<bool> {
    let mut opts = evsync_hub::link::options(url, user.0, 1 << 20, ca)?;
    opts.set_clean_session(true).set_credentials(user.0, user.1);
    let (_client, mut eventloop) = AsyncClient::new(opts, 16);
    Ok(tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return ack.code == ConnectReturnCode::Success
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sync_over_tls_through_mosquitto_and_plain_clients_are_refused() -> anyhow::Result<()>
{
    let dir = test_dir("mosquitto-tls")?;
    let tls_dir = dir.path().join("tls");
    let tls = evsync_hub::tls::init(&tls_dir, &["127.0.0.1".into()])?;
    let broker_addr = free_loopback_addr()?;
    let url = format!("mqtts://{broker_addr}");
    let mut cfg = hub_config(dir.path(), Some(url.clone()))?;
    cfg.mqtt.password_file = Some(cfg.data_dir.join("mqtt-secret"));
    cfg.mqtt.ca_file = Some(tls.ca_cert.clone());
    std::fs::create_dir_all(&cfg.data_dir)?;
    let hub_toml = dir.path().join("hub.toml");
    write_hub_toml(&cfg, &hub_toml)?;

    let field = unique("field-tls");
    let secret = hub_cli(HUB, &hub_toml, &["devices", "credential", &field])?
        .trim()
        .to_owned();
    let files = dir.path().join("broker");
    let out = hub_cli(
        HUB,
        &hub_toml,
        &[
            "broker",
            "mosquitto",
            "--dir",
            &files.display().to_string(),
            "--tls-port",
            &broker_addr.port().to_string(),
            "--tls-dir",
            &tls_dir.display().to_string(),
            "--bind",
            "127.0.0.1",
        ],
    )?;
    assert!(!out.contains(&secret), "a secret printed: {out}");
    let conf = std::fs::read_to_string(files.join("mosquitto.conf"))?;
    assert_eq!(conf.matches("\nlistener ").count(), 1, "{conf}");
    let Some(mut broker) = private_mosquitto(dir.path(), &conf, broker_addr).await? else {
        return Ok(());
    };

    // The hub and an agent over TLS with their credentials: records flow.
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let mut agent_cfg = agent_config(dir.path(), &field, &url, &hub.public_key);
    give_secret(&mut agent_cfg, dir.path(), &secret)?;
    agent_cfg.mqtt.ca_file = Some(tls.ca_cert.clone());
    drop_events(&agent_cfg.spool_dir, 0, 5)?;
    let agent = Agent::start(agent_cfg).await?;
    eventually(
        Duration::from_secs(30),
        "the agent's 5 records over mqtts",
        || async { Ok(api.feed().await?.len() == 5) },
    )
    .await?;

    // The same credential over plain TCP, or over TLS without trusting the
    // CA (another CA's certificate), gets no connection.
    let plain = format!("mqtt://{broker_addr}");
    assert!(
        !connects(&plain, (&field, &secret), None).await?,
        "a plain TCP client let in"
    );
    let other = evsync_hub::tls::init(&dir.path().join("other-ca"), &["127.0.0.1".into()])?;
    assert!(
        !connects(&url, (&field, &secret), Some(&other.ca_cert)).await?,
        "a client trusting another CA connected"
    );
    assert!(
        connects(&url, (&field, &secret), Some(&tls.ca_cert)).await?,
        "the credential over TLS refused"
    );

    agent.shutdown().await?;
    hub.shutdown().await?;
    broker.terminate(Duration::from_secs(5))?;
    Ok(())
}
