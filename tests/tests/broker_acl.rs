//! Issue 8, item 4 (first part): on an external Mosquitto, every agent
//! authenticates with its own credential and may use only its own topics,
//! through the password file and ACL the hub writes. A Mosquitto of its own
//! on a free loopback port (the machine's shared one cannot take another
//! ACL), started and stopped by the test: an agent with its credential
//! syncs records through it to the hub; the same agent cannot publish under
//! or subscribe to another device's topics; a client without a credential,
//! with a wrong secret, or with a revoked one is refused at connection.

use std::path::Path;
use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

/// Runs `evsync-hub <args> --config <hub_toml>`; its stdout.
fn hub_cli(hub_toml: &Path, args: &[&str]) -> anyhow::Result<String> {
    evsync_e2e::hub_cli(HUB, hub_toml, args)
}

/// How a connection attempt as `user` with `secret` ends: `Ok` with the
/// client and its event loop once connected, or the refusal code.
async fn connect(
    url: &str,
    user: Option<(&str, &str)>,
) -> anyhow::Result<Result<(AsyncClient, rumqttc::EventLoop), ConnectReturnCode>> {
    let id = user.map_or_else(|| unique("anonymous"), |(u, _)| u.to_owned());
    let mut opts = MqttOptions::parse_url(format!("{url}?client_id={id}"))?;
    opts.set_clean_session(true);
    if let Some((u, s)) = user {
        opts.set_credentials(u, s);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Ok(code),
                Err(e) => return Err(anyhow::anyhow!("connecting: {e}")),
            }
        }
    })
    .await??;
    Ok(match outcome {
        ConnectReturnCode::Success => Ok((client, eventloop)),
        code => Err(code),
    })
}

/// Messages arriving on `eventloop` within `wait`, as (topic, payload).
async fn received(eventloop: &mut rumqttc::EventLoop, wait: Duration) -> Vec<(String, Vec<u8>)> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                got.push((p.topic.clone(), p.payload.to_vec()));
            }
        }
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_is_confined_to_its_own_topics_by_the_acl_the_hub_writes() -> anyhow::Result<()>
{
    // The policy of this suite: Mosquitto is used where .ci/run says there is one.
    if mosquitto_url().is_none() {
        return Ok(());
    }
    let dir = test_dir("broker-acl")?;
    let broker_addr = evsync_hub::broker::free_loopback_addr()?;
    let url = format!("mqtt://{broker_addr}");
    let mut cfg = hub_config(dir.path(), Some(url.clone()))?;
    cfg.mqtt.password_file = Some(cfg.data_dir.join("mqtt-secret"));
    let hub_toml = dir.path().join("hub.toml");
    std::fs::create_dir_all(&cfg.data_dir)?;
    write_hub_toml(&cfg, &hub_toml)?;

    // Enrolment issues each agent its secret; the hub writes the broker's files.
    let field = unique("field-acl");
    let other = unique("field-other");
    let secret = hub_cli(&hub_toml, &["devices", "credential", &field])?
        .trim()
        .to_owned();
    let other_secret = hub_cli(&hub_toml, &["devices", "credential", &other])?
        .trim()
        .to_owned();
    assert_eq!(secret.len(), 43, "{secret}");
    let files = dir.path().join("broker");
    hub_cli(
        &hub_toml,
        &["broker", "mosquitto", "--dir", &files.display().to_string()],
    )?;
    let passwd = std::fs::read_to_string(files.join("passwd"))?;
    assert!(
        !passwd.contains(&secret),
        "the secret itself is in the password file"
    );
    let conf = format!(
        "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
        broker_addr.port(),
        files.join("passwd").display(),
        files.join("acl").display()
    );
    let Some(mut broker) = private_mosquitto(dir.path(), &conf, broker_addr).await? else {
        return Ok(());
    };

    // The hub and an agent with their credentials: records flow.
    let hub = Hub::start(cfg).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let mut agent_cfg = agent_config(dir.path(), &field, &url, &hub.public_key);
    give_secret(&mut agent_cfg, dir.path(), &secret)?;
    drop_events(&agent_cfg.spool_dir, 0, 5)?;
    let agent = Agent::start(agent_cfg).await?;
    eventually(
        Duration::from_secs(30),
        "the agent's 5 records in the feed",
        || async { Ok(api.feed().await?.len() == 5) },
    )
    .await?;

    // The same agent, connected with its own credential, cannot reach
    // another device's topics: its publishes there are dropped by the
    // broker, its subscriptions refused. Its own topic works.
    let (watcher, mut watcher_loop) = connect(&url, Some((&other, &other_secret)))
        .await?
        .map_err(|c| anyhow::anyhow!("{other} refused: {c:?}"))?;
    watcher
        .subscribe(format!("evsync/v1/{other}/#"), QoS::AtLeastOnce)
        .await?;
    let _ = received(&mut watcher_loop, Duration::from_millis(500)).await;
    let intruder_id = format!("{field}-2");
    let mut opts = MqttOptions::parse_url(format!("{url}?client_id={intruder_id}"))?;
    opts.set_credentials(field.clone(), secret.clone());
    let (intruder, mut intruder_loop) = AsyncClient::new(opts, 16);
    intruder
        .publish(
            format!("evsync/v1/{other}/records"),
            QoS::AtLeastOnce,
            false,
            b"EVB1 forged".to_vec(),
        )
        .await?;
    intruder
        .subscribe(format!("evsync/v1/{other}/receipts"), QoS::AtLeastOnce)
        .await?;
    // Mosquitto grants the subscription and delivers nothing on it: a
    // message on the other device's receipts topic reaches the other
    // device, not this one; nor did the forged batch reach anyone.
    let _ = received(&mut intruder_loop, Duration::from_millis(500)).await;
    watcher
        .publish(
            format!("evsync/v1/{other}/receipts"),
            QoS::AtLeastOnce,
            false,
            b"for the other device only".to_vec(),
        )
        .await?;
    let seen = received(&mut watcher_loop, Duration::from_secs(1)).await;
    let topics: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [format!("evsync/v1/{other}/receipts")],
        "the other device sees its own message and nothing from {field}"
    );
    let leaked = received(&mut intruder_loop, Duration::from_secs(1)).await;
    assert!(
        leaked.is_empty(),
        "{field} read another device's receipts: {leaked:?}"
    );

    // No credential, a wrong secret: refused at connection.
    let refused = |r: &Result<_, ConnectReturnCode>| {
        matches!(
            r,
            Err(ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword)
        )
    };
    assert!(refused(&connect(&url, None).await?), "anonymous let in");
    assert!(
        refused(&connect(&url, Some((&field, "not-the-secret"))).await?),
        "a wrong secret let in"
    );

    // Revoked: the files written again and reloaded, the device is refused.
    hub_cli(&hub_toml, &["devices", "revoke", &other])?;
    hub_cli(
        &hub_toml,
        &["broker", "mosquitto", "--dir", &files.display().to_string()],
    )?;
    let pid = broker
        .pid()
        .ok_or_else(|| anyhow::anyhow!("mosquitto not running"))?;
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    eventually(
        Duration::from_secs(10),
        "the revoked device refused",
        || async { Ok(connect(&url, Some((&other, &other_secret))).await?.is_err()) },
    )
    .await?;
    // ...and the enrolled one still let in.
    assert!(connect(&url, Some((&field, &secret))).await?.is_ok());

    agent.shutdown().await?;
    hub.shutdown().await?;
    broker.terminate(Duration::from_secs(5))?;
    Ok(())
}
