//! Issue 6 (sensing coverage) and SPEC.md "Interfaces → Web dashboard"
//! ("coverage charts … tested in a real headless browser"), "Sensing
//! coverage" ("each figure comes with its numerator and denominator, and
//! drills down to the actions or officers that are not covered"): with a
//! real field agent's recording and two enforcement actions — one inside the
//! recording, one an hour later with nothing recorded — headless Chromium
//! signs in and opens the Coverage view. It shows the seven figures of the
//! window as the API gives them (actions 1 / 2, the uncovered one's cause),
//! the unit in the least-covered table, a line per unit in an SVG chart, the
//! uncovered action linking to its device, the officers and late uploads the
//! API lists; a window without actions says there is nothing to chart; the
//! window defaults to the last 30 days; each CSV export, downloaded by the
//! page with the token, is the API's CSV with the right rows; and a
//! screenshot is a real picture with the chart's line colour in it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use evsync_agent::agent::Agent;
use evsync_e2e::browser::*;
use evsync_e2e::*;
use evsync_hub::server::Hub;
use serde_json::{json, Value};

/// The longest the page may take to save an export (it takes about a second).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// The unit of the field agent (tests/src/lib.rs `agent_config`), named as operators name it.
const UNIT: &str = "500112010001";
const UNIT_ZH: &str = "渝北区综合行政执法局";
/// The field agent's officer, and a second officer of the unit without a recorder.
const OFFICER: &str = "100001";
const OFFICER_2: &str = "100009";
const OFFICER_2_ZH: &str = "王芳";
/// The colour of the chart's first line (`.s0` in style.css).
const FIRST_LINE: [u8; 3] = [0xd9, 0x48, 0x0f];
/// The hub counts days in China Standard Time.
const HUB_ZONE_HOURS: i64 = 8;

/// Opens `url` (an export address of the Coverage view) in a headless
/// Chromium that saves downloads to a folder of its own without asking,
/// waits for the file `name` to be saved there, and returns it. (Real time,
/// not virtual: a download is the browser's, and a `--dump-dom` run may end
/// before it is written.)
fn download(dir: &Path, url: &str, name: &str) -> anyhow::Result<String> {
    let profile = tempfile::Builder::new()
        .prefix("chromium-profile-")
        .tempdir_in(dir)?;
    let to = tempfile::Builder::new()
        .prefix("downloads-")
        .tempdir_in(dir)?;
    std::fs::create_dir_all(profile.path().join("Default"))?;
    std::fs::write(
        profile.path().join("Default").join("Preferences"),
        json!({ "download": { "default_directory": to.path(), "prompt_for_download": false } })
            .to_string(),
    )?;
    let log = profile.path().join("chromium.log");
    let mut child = spawn_chromium(
        profile.path(),
        &[],
        url,
        Stdio::null(),
        Stdio::from(std::fs::File::create(&log)?),
    )?;
    let file = to.path().join(name);
    let deadline = Instant::now() + DOWNLOAD_TIMEOUT;
    // Chromium writes a download under a temporary name and renames it when complete.
    while !file.is_file() && Instant::now() < deadline && child.try_wait()?.is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_group(&mut child);
    let saved: Vec<String> = std::fs::read_dir(to.path())?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    anyhow::ensure!(
        saved == [name],
        "opening {url} saved {saved:?} within {DOWNLOAD_TIMEOUT:?}, not {name:?} (a failed \
         export shows in the page's banner); chromium's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    Ok(std::fs::read_to_string(file)?)
}

fn assert_shows(html: &str, part: &str, text: &str) {
    assert!(
        html.contains(&in_html(text)),
        "the {part} does not show {text:?}; it is:\n{html}"
    );
}

/// The part of `html` from the element marked `attr="value"` to the next
/// element marked with the same attribute (or the end).
fn part<'a>(html: &'a str, attr: &str, value: &str) -> &'a str {
    let marker = format!("{attr}=\"{value}\"");
    let Some(start) = html.find(&marker) else {
        panic!("nothing marked {marker}:\n{html}");
    };
    let rest = &html[start + marker.len()..];
    let end = rest.find(&format!("{attr}=\"")).unwrap_or(rest.len());
    &html[start..start + marker.len() + end]
}

/// The Coverage view of `dom`, checked to be signed in and loaded.
fn coverage_view(dom: &str) -> &str {
    let main = main_of(dom);
    assert!(
        !main.contains("id=\"login-form\""),
        "the Coverage view shows the sign-in form: the token was not taken; DOM:\n{dom}"
    );
    assert!(
        !main.contains("Could not load this page"),
        "the Coverage view failed to load; DOM:\n{dom}"
    );
    assert!(main.contains("data-view=\"coverage\""), "{dom}");
    main
}

/// The hub's day (China Standard Time) of an instant.
fn hub_day(t: DateTime<Utc>) -> NaiveDate {
    (t + chrono::Duration::hours(HUB_ZONE_HOURS)).date_naive()
}

/// A count as the page writes it (en-US, with thousands separators).
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A span of milliseconds as the page writes it: seconds under a minute,
/// minutes under an hour, else hours.
fn span_text(ms: i64) -> String {
    if ms.abs() < 60_000 {
        format!("{} s", (ms as f64 / 1_000.0).round() as i64)
    } else if ms.abs() < 3_600_000 {
        format!("{} min", (ms as f64 / 60_000.0).round() as i64)
    } else {
        let tenths = (ms as f64 / 360_000.0).round() as i64;
        match tenths % 10 {
            0 => format!("{} h", tenths / 10),
            t => format!("{}.{} h", tenths / 10, t.abs()),
        }
    }
}

/// "numerator / denominator" of one of the seven figures as the page writes it.
fn figure_text(key: &str, f: &Value) -> anyhow::Result<String> {
    let (n, d) = match key {
        "actions" | "personnel" | "spatial" => ("covered", "total"),
        "devices" => ("heard", "total"),
        "time" => ("recorded_ms", "on_duty_ms"),
        "timeliness" => ("on_time", "total"),
        "integrity" => ("intact", "total"),
        other => anyhow::bail!("no figure {other}"),
    };
    let n = f[n].as_i64().with_context(|| format!("{key}.{n} in {f}"))?;
    let d = f[d].as_i64().with_context(|| format!("{key}.{d} in {f}"))?;
    Ok(if key == "time" {
        format!("{} / {}", span_text(n), span_text(d))
    } else {
        format!("{} / {}", grouped(n), grouped(d))
    })
}

/// The rows of a CSV as maps from its header's names (no quoted commas in these tests' data).
fn csv_rows(text: &str) -> anyhow::Result<Vec<std::collections::HashMap<String, String>>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .context("an empty CSV")?
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            anyhow::ensure!(
                cells.len() == header.len(),
                "CSV row {l:?} does not match its header {header:?}"
            );
            Ok(header
                .iter()
                .cloned()
                .zip(cells.iter().map(|c| c.trim().trim_matches('"').to_owned()))
                .collect())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coverage_view_shows_the_figures_chart_gaps_and_csv_of_real_actions_in_headless_chromium(
) -> anyhow::Result<()> {
    let browser = chromium();
    let started = Instant::now();
    let dir = test_dir("dashboard-coverage")?;
    let hub = Hub::start(hub_config(dir.path(), None)?).await?;
    let api = Api::new(hub.http_addr, &hub.token);
    let base = format!("http://{}", hub.http_addr);
    let token = hub.token.clone();

    // A field agent with a real 20 s recording.
    let field = unique("field-covdash");
    let cfg = agent_config(dir.path(), &field, &hub.mqtt_url, &hub.public_key);
    anyhow::ensure!(
        cfg.unit_code.as_deref() == Some(UNIT),
        "{:?}",
        cfg.unit_code
    );
    anyhow::ensure!(
        cfg.officer_id.as_deref() == Some(OFFICER),
        "{:?}",
        cfg.officer_id
    );
    std::fs::create_dir_all(&cfg.spool_dir)?;
    let part_file = cfg.spool_dir.join("VID_0001.mp4.part");
    evsync_hub::demo::write_mp4(&part_file, 20, 2_000, 4)?;
    std::fs::rename(&part_file, cfg.spool_dir.join("VID_0001.mp4"))?;
    let spool = cfg.spool_dir.clone();
    let agent = Agent::start(cfg).await?;
    for (path, body) in [
        (
            "/api/v1/units",
            json!({ "unit_code": UNIT, "name": UNIT_ZH, "district_code": "500112" }),
        ),
        (
            "/api/v1/officers",
            json!({ "officer_id": OFFICER_2, "name": OFFICER_2_ZH, "unit_code": UNIT }),
        ),
    ] {
        let (status, v) = api.send_json("POST", path, &body).await?;
        anyhow::ensure!((200..300).contains(&status), "POST {path}: {status} {v}");
    }
    eventually(Duration::from_secs(30), "the recording stored", || async {
        Ok(api.stored_media().await? == 1)
    })
    .await?;

    // Two actions of its officer: 2 s into the recording for 15 s (covered),
    // and an hour later for 5 minutes (nothing recorded).
    let media = api.media().await?.remove(0);
    let recorded: DateTime<Utc> = media["started_at"]
        .as_str()
        .or(media["device_time"].as_str())
        .unwrap_or_default()
        .parse()?;
    let real =
        recorded - chrono::Duration::milliseconds(media["clock_offset_ms"].as_i64().unwrap_or(0));
    let inside = (
        real + chrono::Duration::seconds(2),
        real + chrono::Duration::seconds(17),
    );
    let later = (
        real + chrono::Duration::hours(1),
        real + chrono::Duration::hours(1) + chrono::Duration::minutes(5),
    );
    for (name, (from, to), action) in [("in", inside, "act-in"), ("out", later, "act-out")] {
        drop_event(
            &spool,
            &format!("{name}-1"),
            &from.to_rfc3339(),
            json!({"type": "action_started", "action_id": action, "domain": "01",
                   "case_number": format!("渝500112罚〔2026〕{name}号")}),
        )?;
        drop_event(
            &spool,
            &format!("{name}-2"),
            &to.to_rfc3339(),
            json!({"type": "action_ended", "action_id": action}),
        )?;
    }

    // Both officers on duty from just before the recording to just after the
    // second action: one with the field device, one without any recorder.
    let duty = (
        (real - chrono::Duration::minutes(10)).to_rfc3339(),
        (later.1 + chrono::Duration::minutes(10)).to_rfc3339(),
    );
    let duties: Vec<Value> = [OFFICER, OFFICER_2]
        .iter()
        .map(|o| json!({ "officer_id": o, "start": duty.0, "end": duty.1 }))
        .collect();
    let (status, v) = api
        .send_json(
            "POST",
            "/api/v1/coverage/duties",
            &json!({ "duties": duties }),
        )
        .await?;
    anyhow::ensure!(status == 200, "POST /api/v1/coverage/duties: {status} {v}");

    // The window the page is opened on: whole days around both actions.
    let first_day = hub_day(real) - chrono::Duration::days(1);
    let last_day = hub_day(later.1) + chrono::Duration::days(1);
    let (from, to) = (first_day.to_string(), last_day.to_string());
    // As the page writes it (URLSearchParams): "2026-12-01T00:00:00+08:00".
    let api_window = format!(
        "from={from}T00%3A00%3A00%2B08%3A00&to={}T00%3A00%3A00%2B08%3A00",
        last_day + chrono::Duration::days(1)
    );
    eventually(Duration::from_secs(30), "both actions judged", || async {
        let v = api
            .get_ok(&format!("/api/v1/coverage/actions?{api_window}"))
            .await?;
        Ok(v["actions"].as_array().map(Vec::len) == Some(2))
    })
    .await?;

    // What the API says, which the page must show.
    let figures = api
        .get_ok(&format!("/api/v1/coverage?group_by=unit&{api_window}"))
        .await?;
    let all = &figures["all"];
    assert_eq!(
        (&all["actions"]["covered"], &all["actions"]["total"]),
        (&json!(1), &json!(2)),
        "{figures}"
    );
    let officers = api
        .get_ok(&format!(
            "/api/v1/coverage/officers?working=false&{api_window}"
        ))
        .await?;
    anyhow::ensure!(
        officers["officers"]
            .as_array()
            .is_some_and(|l| l.iter().any(|o| o["officer_id"] == OFFICER_2)),
        "{OFFICER_2}, on duty without a recorder, is not among the officers without one: {officers}"
    );
    let late = api
        .get_ok(&format!("/api/v1/coverage/late?{api_window}"))
        .await?;
    let action_day = hub_day(later.0).to_string();
    anyhow::ensure!(
        hub_day(inside.0) == hub_day(later.0),
        "the two actions fall on two days (the test ran just before midnight, China time); run it again"
    );

    // The view, opened on the window by its address.
    let view = format!("{base}/dashboard/#/coverage?from={from}&to={to}&by=unit");
    let dom = dump_dom(dir.path(), &format!("{view}&token={token}"))?;
    let page = coverage_view(&dom);
    assert!(
        dom.contains(r##"href="#/coverage" data-view="coverage" class="active""##),
        "the nav does not show Coverage as the view: {dom}"
    );
    assert!(
        !dom.contains(token.as_str()),
        "the token is left in the page"
    );
    assert!(page.contains(&format!("value=\"{from}\"")), "from: {page}");
    assert!(page.contains(&format!("value=\"{to}\"")), "to: {page}");

    // The seven figures of the window, each numerator / denominator as the API gives them.
    let tiles = part(page, "data-section", "figures");
    for key in [
        "actions",
        "devices",
        "personnel",
        "time",
        "timeliness",
        "integrity",
        "spatial",
    ] {
        let tile = part(tiles, "data-figure", key);
        assert_shows(tile, &format!("{key} tile"), &figure_text(key, &all[key])?);
    }
    let actions_tile = part(tiles, "data-figure", "actions");
    assert_shows(actions_tile, "actions tile", "1 / 2");
    assert_shows(actions_tile, "actions tile", "50%");
    assert!(
        actions_tile.contains("data-cause=\"nothing_recorded\"")
            && actions_tile.contains(">nothing_recorded<"),
        "the actions tile does not give the cause: {actions_tile}"
    );

    // The least covered table: the unit, by name, with its actions and every figure.
    let least = part(page, "data-section", "least");
    let row = part(least, "data-group", UNIT);
    assert_shows(row, "unit's row", UNIT_ZH);
    assert_shows(row, "unit's row", "1 / 2");
    assert_shows(row, "unit's row", "50%");
    assert!(row.contains(">nothing_recorded<"), "{row}");
    let group = figures["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == UNIT))
        .context("the unit's group")?;
    for key in [
        "devices",
        "personnel",
        "time",
        "timeliness",
        "integrity",
        "spatial",
    ] {
        if group[key].is_object() {
            assert_shows(
                row,
                &format!("unit's {key}"),
                &figure_text(key, &group[key])?,
            );
        }
    }

    // The chart: the unit's line, a point for the day of its actions, and the legend.
    let chart = part(page, "data-section", "chart");
    assert!(
        chart.contains("<svg class=\"chart\""),
        "no SVG chart: {chart}"
    );
    let line = part(chart, "data-unit", UNIT);
    assert!(
        line.contains("<path class=\"series\" d=\"M"),
        "no line for {UNIT}: {chart}"
    );
    assert_shows(
        line,
        "unit's line",
        &format!("{UNIT} · {action_day}: 1 / 2 actions recorded (50%)"),
    );
    assert_shows(chart, "chart's legend", UNIT_ZH);
    assert!(!chart.contains("nothing to chart"), "{chart}");

    // The gaps: the uncovered action with its cause and device; not the covered one.
    let uncovered = part(page, "data-section", "uncovered-actions");
    let out = part(uncovered, "data-action", "act-out");
    assert!(out.contains(">nothing_recorded<"), "{out}");
    assert!(
        out.contains(&format!("href=\"#/devices/{field}\"")),
        "the uncovered action does not link its device: {out}"
    );
    assert_shows(out, "uncovered action", "渝500112罚〔2026〕out号");
    assert!(!uncovered.contains("act-in"), "{uncovered}");
    let listed = part(page, "data-section", "officers");
    let list = officers["officers"].as_array().context("officers")?;
    if list.is_empty() {
        assert_shows(
            listed,
            "officers list",
            "Every officer on duty in this window had a working recorder.",
        );
    }
    for o in list {
        let id = o["officer_id"].as_str().context("officer_id")?;
        assert!(
            listed.contains(&format!("data-officer=\"{id}\"")),
            "{listed}"
        );
        assert_shows(listed, "officers list", o["day"].as_str().context("day")?);
    }
    let row = part(listed, "data-officer", OFFICER_2);
    assert_shows(row, "officer's row", OFFICER_2_ZH);
    assert_shows(row, "officer's row", "no working recorder");
    let listed = part(page, "data-section", "late");
    let list = late["late"].as_array().context("late")?;
    if list.is_empty() {
        assert_shows(
            listed,
            "late uploads",
            "Every recording of this window reached the hub in time.",
        );
    }
    for l in list {
        let id = l["record_id"].as_str().context("record_id")?;
        assert!(
            listed.contains(&format!("href=\"#/records/{id}\"")),
            "{listed}"
        );
    }

    // CSV: each export link reads the page's own API address as CSV, and
    // opened as an address the page downloads it with the token.
    let groups_csv = format!("/api/v1/coverage?group_by=unit&{api_window}&format=csv");
    assert!(
        least.contains(&format!("data-export=\"{}\"", in_html(&groups_csv))),
        "the least-covered table's CSV link is not {groups_csv}: {least}"
    );
    let (status, direct) = api.get(&groups_csv, true).await?;
    assert_eq!(status, 200, "GET {groups_csv}: {direct}");
    let saved = download(
        dir.path(),
        &format!("{view}&export=groups&token={token}"),
        &format!("evsync-coverage-unit-{from}_{to}.csv"),
    )?;
    assert_eq!(
        Some(saved.as_str()),
        direct.as_str(),
        "the saved CSV is not the API's"
    );
    let rows = csv_rows(&saved)?;
    let unit_row = rows
        .iter()
        .find(|r| r.get("key").map(String::as_str) == Some(UNIT))
        .with_context(|| format!("no row for {UNIT} in the CSV:\n{saved}"))?;
    assert_eq!(
        (
            unit_row.get("actions_covered"),
            unit_row.get("actions_total")
        ),
        (Some(&"1".to_owned()), Some(&"2".to_owned())),
        "{saved}"
    );
    let saved = download(
        dir.path(),
        &format!("{view}&export=actions&token={token}"),
        &format!("evsync-coverage-uncovered-actions-{from}_{to}.csv"),
    )?;
    let rows = csv_rows(&saved)?;
    assert_eq!(rows.len(), 1, "one uncovered action:\n{saved}");
    let cell = |name: &str| rows[0].get(name).map(String::as_str);
    // The action's key is its device and its id.
    assert_eq!(
        cell("key"),
        Some(format!("{field}/act-out").as_str()),
        "{saved}"
    );
    assert_eq!(cell("cause"), Some("nothing_recorded"), "{saved}");
    assert_eq!(cell("covered"), Some("false"), "{saved}");
    assert_eq!(cell("unit_code"), Some(UNIT), "{saved}");

    // A window without actions: dashes, and a note instead of a chart.
    let dom = dump_dom(
        dir.path(),
        &format!("{base}/dashboard/#/coverage?from=2020-01-01&to=2020-01-31&token={token}"),
    )?;
    let page = coverage_view(&dom);
    let chart = part(page, "data-section", "chart");
    assert!(!chart.contains("<svg"), "{chart}");
    assert_shows(
        chart,
        "empty chart",
        "No enforcement actions in this window: there is nothing to chart.",
    );
    let tile = part(
        part(page, "data-section", "figures"),
        "data-figure",
        "actions",
    );
    assert_shows(tile, "empty actions tile", "0 / 0");
    assert_shows(tile, "empty actions tile", "—");

    // By default, the last 30 days to today (China time).
    let before = hub_day(Utc::now());
    let dom = dump_dom(
        dir.path(),
        &format!("{base}/dashboard/#/coverage?token={token}"),
    )?;
    let page = coverage_view(&dom);
    let after = hub_day(Utc::now());
    assert!(
        [before, after].iter().any(|today| {
            page.contains(&format!(
                "value=\"{}\"",
                *today - chrono::Duration::days(29)
            )) && page.contains(&format!("value=\"{today}\""))
        }),
        "the default window is not the last 30 days: {page}"
    );

    // A real picture, with the chart's line in it.
    let png_file = dir.path().join("dashboard-coverage.png");
    let shot = screenshot(dir.path(), &format!("{view}&token={token}"), &png_file)?;
    keep_screenshot(&png_file)?;
    assert_rendered("coverage", &shot);
    let line_pixels = shot
        .2
        .chunks_exact(4)
        .filter(|p| p[..3] == FIRST_LINE)
        .count();
    assert!(
        line_pixels > 60,
        "the chart's first line colour is not in the screenshot ({line_pixels} pixels)"
    );

    eprintln!(
        "coverage view checked in {:?} with {}",
        started.elapsed(),
        browser.display()
    );
    agent.shutdown().await?;
    hub.shutdown().await
}
