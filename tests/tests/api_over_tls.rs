//! Issue 8, item 4 (transport security) end to end on one hub configured
//! as in production: the embedded broker requires TLS and per-device
//! credentials, and the HTTP API (uploads included) is served over HTTPS.
//! An agent trusting the hub's private CA syncs a recording's record over
//! `mqtts://` and its bytes over HTTPS; the feed is read over HTTPS; plain
//! HTTP gets no answer from the API port. SPEC.md guarantee 1 holds over
//! TLS: the recording is receipted only once stored.

use std::time::Duration;

use evsync_agent::agent::Agent;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use evsync_hub::store::{DeviceKind, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_syncs_records_over_mqtts_and_recordings_over_https() -> anyhow::Result<()> {
    let dir = test_dir("api-over-tls")?;
    let tls = evsync_hub::tls::init(&dir.path().join("tls"), &["127.0.0.1".into()])?;
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.mqtt.require_auth = true;
    cfg.mqtt.require_tls = true;
    cfg.mqtt.tls_cert = Some(tls.server_cert.clone());
    cfg.mqtt.tls_key = Some(tls.server_key.clone());
    cfg.http.tls_cert = Some(tls.server_cert.clone());
    cfg.http.tls_key = Some(tls.server_key.clone());
    let field = unique("field-https");
    std::fs::create_dir_all(&cfg.data_dir)?;
    let secret = evsync_hub::mosquitto::new_secret()?;
    Store::connect(&cfg.store_location())?.set_credential(
        &field,
        DeviceKind::Field,
        &evsync_hub::mosquitto::password_hash(&secret)?,
        "test",
    )?;
    let hub = Hub::start(cfg).await?;
    assert_eq!(hub.api_url, format!("https://{}", hub.http_addr));
    let api = Api::https(hub.http_addr, &hub.token, &tls.ca_cert);
    assert_eq!(api.get("/healthz", false).await?.0, 200);
    assert!(
        Api::new(hub.http_addr, &hub.token)
            .get("/healthz", false)
            .await
            .is_err(),
        "plain HTTP answered on the HTTPS port"
    );
    // An HTTPS client given no CA (an agent without upload.ca_file) gets a
    // certificate error, not a panic, and trusts no system root.
    let url = format!("{}/healthz", hub.api_url);
    let untrusting = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let agent = ureq::Agent::config_builder()
            .tls_config(evsync_agent::tls::http_tls(None)?)
            .build()
            .new_agent();
        Ok(agent.get(&url).call().is_err())
    })
    .await??;
    assert!(untrusting, "an HTTPS client with no CA trusted the hub");

    let mut agent_cfg = agent_config(dir.path(), &field, &hub.mqtt_url, &hub.public_key);
    give_secret(&mut agent_cfg, dir.path(), &secret)?;
    agent_cfg.mqtt.ca_file = Some(tls.ca_cert.clone());
    agent_cfg.upload.ca_file = Some(tls.ca_cert.clone());
    std::fs::create_dir_all(&agent_cfg.spool_dir)?;
    let part = agent_cfg.spool_dir.join("20261123_083000_0001.mp4.part");
    evsync_hub::demo::write_mp4(&part, 10, 24_000, 3)?;
    std::fs::rename(&part, agent_cfg.spool_dir.join("20261123_083000_0001.mp4"))?;
    let agent = Agent::start(agent_cfg).await?;
    eventually(
        Duration::from_secs(30),
        "the recording stored over HTTPS",
        || async {
            let feed = api.feed().await?;
            Ok(feed.len() == 1 && feed[0]["media_state"] == "stored")
        },
    )
    .await?;
    agent.shutdown().await?;
    hub.shutdown().await?;
    Ok(())
}
