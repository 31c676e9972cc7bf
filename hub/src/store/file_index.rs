//! A recorder's file indexes across every dock that delivered them.
//!
//! A recorder numbers its recordings 1, 2, 3, …; each media record names the
//! index (`media.file_index`). A pooled recorder is emptied by whichever dock
//! it is put in, and each dock sees only what it copied itself, so only the
//! hub can see that dock A delivered #1–#5 and dock B #8–#9 while #6–#7
//! reached nobody. Between the lowest and the highest index the hub holds for
//! a recorder, every index must be delivered by some source or reported gone
//! by a dock (`files_missing`, which raises its own `recorder_files_missing`
//! alert). What is neither is a `file_index_gap` alert, visible after the
//! same grace period as a sequence gap (a dock may still be sending), and
//! resolved when the missing files arrive late from any dock. Indexes below
//! the lowest ever delivered predate the recorder's first docking and are
//! not expected.

use std::time::Duration;

use super::db::{params, Transaction};
use evsync_protocol::record::RecordBody;

use super::alerts::{raise_visible_at, AlertKind, Subject};
use super::{now, stamp};

/// Ranges in `holes` not covered by any of `covered` (both inclusive).
fn subtract(holes: &[(i64, i64)], covered: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut covered = covered.to_vec();
    covered.sort_unstable();
    let mut out = Vec::new();
    for &(from, to) in holes {
        let mut next = from;
        let mut done = false;
        for &(c_from, c_to) in &covered {
            if c_to < next || c_from > to {
                continue;
            }
            if c_from > next {
                out.push((next, c_from - 1));
            }
            if c_to >= to {
                done = true;
                break;
            }
            next = next.max(c_to + 1);
        }
        if !done {
            out.push((next, to));
        }
    }
    out
}

/// Holes between consecutive indexes of the sorted, distinct `indexes`.
fn holes(indexes: &[i64]) -> Vec<(i64, i64)> {
    indexes
        .windows(2)
        .filter(|w| w[1] > w[0] + 1)
        .map(|w| (w[0] + 1, w[1] - 1))
        .collect()
}

/// Checks the recorder's file indexes after the media row of `body` was
/// stored (inside the same transaction).
pub(crate) fn delivered(
    tx: &Transaction<'_>,
    body: &RecordBody,
    grace: Duration,
) -> anyhow::Result<()> {
    if body.media.as_ref().and_then(|m| m.file_index).is_some() {
        reconcile(tx, &body.device_id, grace)?;
    }
    Ok(())
}

/// Notes a dock's `files_missing` report (record `body`, already stored), so
/// the hub does not alert a second time for what it accounts for.
pub(crate) fn reported_missing(
    tx: &Transaction<'_>,
    body: &RecordBody,
    from: u64,
    to: u64,
    grace: Duration,
) -> anyhow::Result<()> {
    let (Ok(from), Ok(to)) = (i64::try_from(from), i64::try_from(to)) else {
        return Ok(()); // beyond any index a recorder can give; nothing to subtract
    };
    tx.prepare_cached(
        "INSERT INTO files_reported_missing (record_id, device_id, agent_id, from_index, to_index)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (record_id) DO NOTHING",
    )?
    .execute(params![
        body.id.to_string(),
        body.device_id,
        body.agent_id,
        from,
        to
    ])?;
    reconcile(tx, &body.device_id, grace)
}

/// The agent that delivered file `index` of `device` first.
fn deliverer(tx: &Transaction<'_>, device: &str, index: i64) -> anyhow::Result<String> {
    let agent: Option<String> = super::db::OptionalExtension::optional(
        tx.prepare_cached(
            "SELECT agent_id FROM media WHERE device_id = ?1 AND file_index = ?2 ORDER BY rowid LIMIT 1",
        )?
        .query_row(params![device, index], |r| r.get(0)),
    )?;
    Ok(agent.unwrap_or_else(|| "?".into()))
}

/// Makes the open `file_index_gap` alerts of `device` match its holes now:
/// alerts whose hole was filled (or reported by a dock) go — dropped unseen
/// within their grace period, resolved after it — and new holes are raised,
/// a piece of an older alert keeping that alert's times.
fn reconcile(tx: &Transaction<'_>, device: &str, grace: Duration) -> anyhow::Result<()> {
    let indexes: Vec<i64> = tx
        .prepare_cached(
            "SELECT DISTINCT file_index FROM media WHERE device_id = ?1 AND file_index IS NOT NULL
             ORDER BY file_index",
        )?
        .query_map([device], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let reported: Vec<(i64, i64)> = tx
        .prepare_cached(
            "SELECT from_index, to_index FROM files_reported_missing WHERE device_id = ?1",
        )?
        .query_map([device], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let want = subtract(&holes(&indexes), &reported);
    let open: Vec<(i64, i64, i64, String, String)> = tx
        .prepare_cached(
            "SELECT id, file_from, file_to, raised_at, visible_after FROM alerts
             WHERE device_id = ?1 AND kind = 'file_index_gap' AND resolved_at IS NULL",
        )?
        .query_map([device], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let t = now();
    for (id, from, to, _, visible_after) in &open {
        if want.contains(&(*from, *to)) {
            continue;
        }
        if *visible_after > t {
            tx.prepare_cached("DELETE FROM alerts WHERE id = ?1")?
                .execute([id])?;
            tracing::debug!(
                device,
                from,
                to,
                "file index gap accounted for within grace"
            );
        } else {
            tx.prepare_cached("UPDATE alerts SET resolved_at = ?2 WHERE id = ?1")?
                .execute(params![id, t])?;
            tracing::info!(device, from, to, "file index gap filled or reported");
        }
    }
    for &(from, to) in &want {
        if open.iter().any(|o| (o.1, o.2) == (from, to)) {
            continue;
        }
        let (raised_at, visible_after) = match open.iter().find(|o| o.1 <= from && to <= o.2) {
            Some(parent) => (parent.3.clone(), parent.4.clone()),
            None => {
                let raised = chrono::Utc::now();
                let visible =
                    raised + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
                (stamp(raised), stamp(visible))
            }
        };
        let (below, above) = (
            deliverer(tx, device, from - 1)?,
            deliverer(tx, device, to + 1)?,
        );
        let detail = format!(
            "files {from}..={to} of recorder {device} were delivered by no dock and reported missing by none \
             (#{} came via {below}, #{} via {above})",
            from - 1,
            to + 1
        );
        let about = Subject {
            device_id: device,
            files: Some((from as u64, to as u64)),
            ..Subject::default()
        };
        raise_visible_at(
            tx,
            AlertKind::FileIndexGap,
            about,
            &detail,
            &raised_at,
            &visible_after,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{holes, subtract};

    #[test]
    fn holes_lie_between_consecutive_indexes() {
        assert_eq!(holes(&[]), vec![]);
        assert_eq!(holes(&[4]), vec![]);
        assert_eq!(holes(&[1, 2, 3, 4, 5, 8, 9]), vec![(6, 7)]);
        assert_eq!(holes(&[1, 3, 7]), vec![(2, 2), (4, 6)]);
    }

    #[test]
    fn reported_ranges_are_taken_out_of_holes() {
        assert_eq!(subtract(&[(6, 7)], &[]), vec![(6, 7)]);
        assert_eq!(subtract(&[(6, 7)], &[(6, 7)]), vec![]);
        assert_eq!(subtract(&[(6, 7)], &[(1, 100)]), vec![]);
        assert_eq!(subtract(&[(2, 9)], &[(4, 5)]), vec![(2, 3), (6, 9)]);
        assert_eq!(subtract(&[(2, 9)], &[(7, 20), (1, 3)]), vec![(4, 6)]);
        assert_eq!(
            subtract(&[(2, 3), (10, 12)], &[(3, 10)]),
            vec![(2, 2), (11, 12)]
        );
        assert_eq!(
            subtract(&[(1, i64::MAX)], &[(5, i64::MAX)]),
            vec![(1, 4)],
            "no overflow at the top"
        );
    }
}
