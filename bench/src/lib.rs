//! What the benchmarks in `src/bin/` share: free ports, percentiles, JSON
//! from the hub's API, and the enforcement event their agents record.

use evsync_protocol::record::Event;

/// A free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `p` quantile (0..=1) of `sorted`; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// GET `url` as JSON, with a bearer `token` when given.
pub fn get_json(url: &str, token: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let mut req = ureq::get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    Ok(req.call()?.body_mut().read_json()?)
}

/// The `i`-th enforcement action started (a market-supervision penalty
/// case of 渝北区, with its legal basis): the event the agents record.
pub fn event(i: usize) -> Event {
    Event::ActionStarted {
        action_id: format!("A-{i:08}"),
        case_number: Some(format!("渝北市监罚〔2026〕{i}号")),
        domain: "01".into(),
        legal_basis: Some("《中华人民共和国行政处罚法》第五十一条".into()),
    }
}

/// Event-to-feed latency of a feed record `r`, in milliseconds: the hub's
/// `received_at` minus the agent's `ingest_time`.
pub fn feed_latency_ms(r: &serde_json::Value) -> anyhow::Result<f64> {
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(r[field].as_str().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("feed record {field}: {e}"))
    };
    Ok((at("received_at")? - at("ingest_time")?).num_milliseconds() as f64)
}
