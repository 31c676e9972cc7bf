//! SPEC.md "Interfaces" (bearer tokens with roles; every read of evidence
//! written to an audit log) and issue 5 items 3: each role × endpoint pair
//! is allowed or refused as the role says; every evidence read appears in
//! the audit log with who, what and from where; altering, removing or
//! forging an audit row is found by the chain, over the API and the CLI.

use std::collections::HashMap;

use evsync_e2e::*;
use evsync_hub::store::Role;
use serde_json::{json, Value};

const HUB: &str = env!("CARGO_BIN_EXE_e2e-hub");

/// One endpoint call of the matrix.
struct Call {
    method: &'static str,
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
    /// Roles that may make it.
    allowed: &'static [Role],
    /// Whether it reads evidence (audited as `action` on `target`).
    evidence: Option<(&'static str, String)>,
}

use Role::{Admin, Auditor, Operator, Platform};

const ALL: &[Role] = &[Admin, Operator, Platform, Auditor];

fn calls(s: &SyncedHub, n: usize, revocable: &str) -> Vec<Call> {
    let record = s.media_id.clone();
    let recorder = format!("ZFY-T{n:04}");
    let get = |path: String, allowed, evidence| Call {
        method: "GET",
        path,
        body: None,
        allowed,
        evidence,
    };
    let json_body = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    let csv = |t: &str| Some(("text/csv", t.as_bytes().to_vec()));
    vec![
        get("/api/v1/whoami".into(), ALL, None),
        get("/api/v1/openapi.json".into(), ALL, None),
        get(
            "/api/v1/records?limit=5".into(),
            ALL,
            Some(("records.list", "feed".into())),
        ),
        get(
            format!("/api/v1/records/{record}"),
            ALL,
            Some(("record.read", record.clone())),
        ),
        get(
            format!("/api/v1/records/{record}/media"),
            &[Admin, Operator, Platform],
            Some(("media.read", record.clone())),
        ),
        get("/api/v1/alerts".into(), ALL, None),
        get("/api/v1/coverage?group_by=officer".into(), ALL, None),
        get("/api/v1/coverage/actions?covered=false".into(), ALL, None),
        get("/api/v1/coverage/officers?working=false".into(), ALL, None),
        get("/api/v1/coverage/late".into(), ALL, None),
        get("/api/v1/coverage/hours?recorded=false".into(), ALL, None),
        get("/api/v1/coverage/cells?format=csv".into(), ALL, None),
        get("/api/v1/devices".into(), ALL, None),
        get(format!("/api/v1/devices/{}", s.device_id), ALL, None),
        get("/api/v1/officers".into(), ALL, None),
        get("/api/v1/units".into(), ALL, None),
        get("/api/v1/audit".into(), &[Admin, Auditor], None),
        get("/api/v1/audit/verify".into(), &[Admin, Auditor], None),
        get("/api/v1/tokens".into(), &[Admin], None),
        Call {
            method: "POST",
            path: "/api/v1/devices".into(),
            body: json_body(json!({ "device_id": recorder, "kind": "recorder" })),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: format!("/api/v1/devices/{}/approve", s.device_id),
            body: None,
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "PUT",
            path: format!("/api/v1/devices/{}/assignment", s.device_id),
            body: json_body(
                json!({ "officer_id": "100001", "unit_code": "500112010001", "domain": "01" }),
            ),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: "/api/v1/officers".into(),
            body: json_body(
                json!({ "officer_id": "100001", "name": "王伟", "unit_code": "500112010001" }),
            ),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: "/api/v1/units".into(),
            body: json_body(
                json!({ "unit_code": "500112010001", "name": "渝北区市场监督管理局", "district_code": "500112", "domain": "01" }),
            ),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: "/api/v1/officers/import".into(),
            body: csv("officer_id,name,unit_code\n100002,李娜,500112010001\n"),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: "/api/v1/units/import".into(),
            body: csv(
                "unit_code,name,district_code,domain\n500109000001,北碚区城市管理局,500109,05\n",
            ),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: "/api/v1/coverage/actions".into(),
            body: csv("id,officers,start,end\nCASE-9,100001,2026-11-30T09:00:00+08:00,2026-11-30T09:20:00+08:00\n"),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: "/api/v1/coverage/duties".into(),
            body: json_body(
                json!({ "duties": [{ "officer_id": "100001", "start": "2026-11-30T08:00:00+08:00", "end": "2026-11-30T17:00:00+08:00" }] }),
            ),
            allowed: &[Admin, Operator],
            evidence: None,
        },
        Call {
            method: "POST",
            path: "/api/v1/tokens".into(),
            body: json_body(json!({ "name": format!("made-{n}"), "role": "platform" })),
            allowed: &[Admin],
            evidence: None,
        },
        Call {
            method: "DELETE",
            path: format!("/api/v1/tokens/{revocable}"),
            body: None,
            allowed: &[Admin],
            evidence: None,
        },
        Call {
            method: "POST",
            path: format!("/api/v1/devices/{recorder}/revoke"),
            body: None,
            allowed: &[Admin, Operator],
            evidence: None,
        },
    ]
}

async fn token(admin: &Api, name: &str, role: &str) -> anyhow::Result<(String, String)> {
    let (status, v) = admin
        .send_json(
            "POST",
            "/api/v1/tokens",
            &json!({ "name": name, "role": role }),
        )
        .await?;
    anyhow::ensure!(status == 201, "creating token {name}: {status} {v}");
    Ok((
        v["token"].as_str().unwrap_or_default().to_owned(),
        v["id"].as_str().unwrap_or_default().to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_exactly_its_endpoints_and_every_evidence_read_is_audited(
) -> anyhow::Result<()> {
    let dir = test_dir("roles")?;
    let s = SyncedHub::start(dir.path(), "field-roles", 5).await?;
    let admin = s.api.clone();

    let mut holders: Vec<(Role, String, Api)> = Vec::new();
    for role in [Operator, Platform, Auditor] {
        let name = format!("{}-1", role.as_str());
        let (t, _) = token(&admin, &name, role.as_str()).await?;
        holders.push((role, name, admin.with_token(&t)));
    }
    holders.push((Admin, "bootstrap".into(), admin.clone()));

    // Evidence reads each token made (actor, action, target) → count.
    let mut reads: HashMap<(String, String, String), usize> = HashMap::new();
    let mut forbidden = 0.0;
    let mut n = 0;
    for (role, name, api) in &holders {
        n += 1;
        let (_, throwaway) = token(&admin, &format!("throwaway-{n}"), "platform").await?;
        // The recorder the revoke call names is registered first by the admin.
        admin
            .send_json(
                "POST",
                "/api/v1/devices",
                &json!({ "device_id": format!("ZFY-T{n:04}"), "kind": "recorder" }),
            )
            .await?;
        for call in calls(&s, n, &throwaway) {
            let (status, body) = api.send(call.method, &call.path, call.body.clone()).await?;
            let may = call.allowed.contains(role);
            if may {
                assert!(
                    (200..300).contains(&status),
                    "{} {} {} as {}: {status} {body}",
                    role.as_str(),
                    call.method,
                    call.path,
                    name
                );
                if let Some((action, target)) = call.evidence {
                    *reads
                        .entry((name.clone(), action.to_owned(), target))
                        .or_default() += 1;
                }
            } else {
                forbidden += 1.0;
                assert_eq!(
                    status,
                    403,
                    "{} {} {} must be refused: {body}",
                    role.as_str(),
                    call.method,
                    call.path
                );
                assert!(
                    body["error"]
                        .as_str()
                        .is_some_and(|e| e.contains(role.as_str())),
                    "the refusal names the role: {body}"
                );
            }
        }
    }

    // Without a token, or with a revoked one: 401 everywhere under /api/v1.
    let (_, revoked_id) = token(&admin, "soon-revoked", "platform").await?;
    let revoked = {
        let (t, id) = token(&admin, "revoked", "platform").await?;
        let (status, _) = admin
            .send("DELETE", &format!("/api/v1/tokens/{id}"), None)
            .await?;
        assert_eq!(status, 200);
        admin.with_token(&t)
    };
    let nobody = admin.with_token("not-a-token-of-this-hub");
    let mut bad_tokens = 0.0;
    for call in calls(&s, 99, &revoked_id) {
        for api in [&revoked, &nobody] {
            let (status, body) = api.send(call.method, &call.path, call.body.clone()).await?;
            assert_eq!(status, 401, "{} {}: {body}", call.method, call.path);
            bad_tokens += 1.0;
        }
        let (status, _) = admin.get(&call.path, false).await?;
        assert_eq!(status, 401, "GET {} without a token", call.path);
    }
    // The event stream (endless, so outside the matrix): refused to the auditor.
    let (status, body) = holders[2].2.send("GET", "/api/v1/events", None).await?;
    assert_eq!((holders[2].0, status), (Auditor, 403), "{body}");
    forbidden += 1.0;
    // A method a route does not take is 405, not a question of roles.
    let (status, body) = admin.send("DELETE", "/api/v1/records", None).await?;
    assert_eq!(status, 405, "{body}");
    // A JSON body must be an object of known fields.
    for (body, said) in [
        (json!([null, null]), "expected a JSON object"),
        (
            json!({ "officer_id": "100001", "unit": "x" }),
            "unknown field \"unit\"",
        ),
    ] {
        let path = format!("/api/v1/devices/{}/assignment", s.device_id);
        let (status, v) = admin.send_json("PUT", &path, &body).await?;
        assert_eq!(status, 422, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(said)), "{v}");
    }
    // Every refusal is counted by reason, and every request timed by route.
    let refused = |r: &'static str| {
        let api = admin.clone();
        async move {
            api.metric(&format!("evsync_hub_api_refused_total{{reason=\"{r}\"}}"))
                .await
        }
    };
    assert_eq!(refused("forbidden").await?, forbidden);
    assert_eq!(refused("bad_token").await?, bad_tokens);
    assert_eq!(
        refused("missing_token").await?,
        calls(&s, 99, "x").len() as f64
    );
    assert!(
        admin
            .metric("evsync_hub_api_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/records/{id}/media\",status=\"200\"}")
            .await?
            >= 3.0
    );

    // Every evidence read is in the audit log, with its actor, role, action, target and address.
    let auditor = &holders[2].2;
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let v = auditor
            .get_ok(&format!("/api/v1/audit?after={after}&limit=500"))
            .await?;
        let page = v["entries"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        after = v["next"].as_i64().unwrap_or(after);
        entries.extend(page);
    }
    let mut logged: HashMap<(String, String, String), usize> = HashMap::new();
    for e in &entries {
        assert!(
            e["remote"]
                .as_str()
                .is_some_and(|r| r.starts_with("127.0.0.1:")),
            "{e}"
        );
        *logged
            .entry((
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["target"].as_str().unwrap_or_default().to_owned(),
            ))
            .or_default() += 1;
    }
    assert_eq!(
        reads.len(),
        3 * 4 - 1,
        "the auditor reads no media: {reads:?}"
    );
    for (key, count) in &reads {
        if key.0 == "bootstrap" {
            // The bootstrap token also read the feed while waiting for sync.
            assert!(logged.get(key).copied().unwrap_or(0) >= *count, "{key:?}");
        } else {
            assert_eq!(logged.get(key), Some(count), "{key:?} in {logged:?}");
        }
    }
    // Operator actions are audited too, and the custody trail shows the reads.
    assert!(logged
        .keys()
        .any(|k| k.0 == "operator-1" && k.1 == "device.assign"));
    let record = admin
        .get_ok(&format!("/api/v1/records/{}", s.media_id))
        .await?;
    let accessors: Vec<&str> = record["custody"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|st| st["step"] == "accessed")
        .filter_map(|st| st["actor"].as_str())
        .collect();
    for who in ["platform-1", "auditor-1", "operator-1"] {
        assert!(accessors.contains(&who), "{who} not in {accessors:?}");
    }
    s.stop().await
}

/// Opens the hub's store file as someone with access to the disk would.
fn tamper(db: &std::path::Path, sql: &str) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
    ))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_row_altered_on_disk_is_found_by_the_chain_over_the_api_and_the_cli(
) -> anyhow::Result<()> {
    let dir = test_dir("audit-tamper")?;
    let s = SyncedHub::start(dir.path(), "field-audit", 3).await?;
    let (t, _) = token(&s.api, "auditor-1", "auditor").await?;
    let auditor = s.api.with_token(&t);
    for _ in 0..3 {
        s.api
            .get_ok(&format!("/api/v1/records/{}", s.media_id))
            .await?;
    }
    let check = auditor.get_ok("/api/v1/audit/verify").await?;
    assert_eq!(check["intact"], true, "{check}");
    let entries = check["entries"].as_i64().unwrap_or(0);
    assert!(entries >= 4, "{check}");

    // Who read record X is changed from the bootstrap admin to someone else.
    let db = dir.path().join("hub/hub.sqlite");
    let hub_cfg = dir.path().join("hub.toml");
    let mut cfg = hub_config(dir.path(), None)?;
    cfg.data_dir = dir.path().join("hub");
    write_hub_toml(&cfg, &hub_cfg)?;
    let cli = || {
        std::process::Command::new(HUB)
            .args(["audit", "verify", "--config"])
            .arg(&hub_cfg)
            .output()
    };
    assert!(
        cli()?.status.success(),
        "the intact log verifies on the CLI"
    );

    let target = entries - 1;
    tamper(
        &db,
        &format!("UPDATE audit SET actor = 'nobody-saw' WHERE seq = {target};"),
    )?;
    let check = auditor.get_ok("/api/v1/audit/verify").await?;
    assert_eq!(check["intact"], false, "{check}");
    assert_eq!(check["first_bad_seq"], target, "{check}");
    assert!(
        check["problem"]
            .as_str()
            .is_some_and(|p| p.contains("does not match its hash")),
        "{check}"
    );
    let out = cli()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("audit log broken at entry {target}")),
        "{err}"
    );

    // Removing the row instead is found as a missing entry.
    tamper(&db, &format!("DELETE FROM audit WHERE seq = {target};"))?;
    let check = auditor.get_ok("/api/v1/audit/verify").await?;
    assert_eq!(check["first_bad_seq"], target, "{check}");
    assert!(
        check["problem"]
            .as_str()
            .is_some_and(|p| p.contains("missing")),
        "{check}"
    );
    s.stop().await
}
