//! Check-out requests: an officer asks the dock for a recorder (`evsync-agent
//! checkout`, a separate process), the request waits here, and the slot
//! that hands a recorder out claims it, writes the officer into the
//! recorder and settles it with the handover record, all through this
//! table, so a request is answered once even with many slots and restarts.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use evsync_protocol::chain::Hash;
use evsync_protocol::record::RecordBody;
use evsync_protocol::signing::SigningKey;
use rusqlite::{params, OptionalExtension};

use super::{append_in, now, Buffer};

/// Who checks a recorder out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Officer number (6 digits).
    pub officer_no: String,
    /// Unit number (12 digits).
    pub unit_no: String,
    /// Officer name (may be empty).
    pub officer_name: String,
    /// Unit name (may be empty).
    pub unit_name: String,
}

/// A check-out request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// Request number.
    pub id: i64,
    /// Who asks.
    pub holder: Holder,
    /// The recorder asked for, or (once settled) handed out.
    pub recorder_id: Option<String>,
    /// `pending`, `claimed` (a slot is writing the recorder), `done` or `refused`.
    pub state: String,
    /// What happened, once settled.
    pub result: Option<String>,
    /// The request is dropped if no recorder is handed out by then.
    pub expires_at: DateTime<Utc>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Checkout, String)> {
    Ok((
        Checkout {
            id: r.get(0)?,
            holder: Holder {
                officer_no: r.get(1)?,
                unit_no: r.get(2)?,
                officer_name: r.get(3)?,
                unit_name: r.get(4)?,
            },
            recorder_id: r.get(5)?,
            state: r.get(6)?,
            result: r.get(7)?,
            expires_at: DateTime::<Utc>::MIN_UTC,
        },
        r.get::<_, String>(8)?,
    ))
}

fn with_expiry((mut c, at): (Checkout, String)) -> anyhow::Result<Checkout> {
    c.expires_at = DateTime::parse_from_rfc3339(&at)
        .with_context(|| format!("check-out request {} has a malformed expiry {at:?}", c.id))?
        .with_timezone(&Utc);
    Ok(c)
}

const COLUMNS: &str =
    "id, officer_no, unit_no, officer_name, unit_name, recorder_id, state, result, expires_at";

fn settle(conn: &rusqlite::Connection, id: i64, state: &str, result: &str) -> anyhow::Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE checkouts SET state = ?2, result = ?3, done_at = ?4 WHERE id = ?1 AND state = 'claimed'",
        )?
        .execute(params![id, state, result, now()])?;
    anyhow::ensure!(
        n == 1,
        "check-out request {id} is no longer claimed; not settled as {state}"
    );
    Ok(())
}

impl Buffer {
    /// Files a check-out request for `holder`, for `recorder_id` or any
    /// cleared recorder, valid until `expires_at`. Returns its number.
    pub fn request_checkout(
        &mut self,
        holder: &Holder,
        recorder_id: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO checkouts (officer_no, unit_no, officer_name, unit_name, recorder_id, state, requested_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
            )?
            .execute(params![
                holder.officer_no,
                holder.unit_no,
                holder.officer_name,
                holder.unit_name,
                recorder_id,
                now(),
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ])
            .context("filing a check-out request")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Request `id` as it stands.
    pub fn checkout(&self, id: i64) -> anyhow::Result<Option<Checkout>> {
        let found = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM checkouts WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?;
        found.map(with_expiry).transpose()
    }

    /// Claims the oldest unexpired pending request `recorder_id` can
    /// answer: one that names it, or (when `any`, this being the best
    /// recorder to hand out) one that names none. Expired requests are
    /// refused on the way. A claimed request is settled by
    /// [`Buffer::settle_checkout`].
    pub fn claim_checkout(
        &mut self,
        recorder_id: &str,
        any: bool,
    ) -> anyhow::Result<Option<Checkout>> {
        let tx = self.conn.transaction()?;
        let stamp = now();
        tx.prepare_cached(
            "UPDATE checkouts SET state = 'refused', result = 'no cleared recorder was handed out in time', done_at = ?1
             WHERE state = 'pending' AND expires_at < ?1",
        )?
        .execute([&stamp])?;
        let found = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM checkouts
                 WHERE state = 'pending' AND (recorder_id = ?1 OR (?2 AND recorder_id IS NULL))
                 ORDER BY id LIMIT 1"
            ))?
            .query_row(params![recorder_id, any], row)
            .optional()?;
        let Some(found) = found else {
            tx.commit()?;
            return Ok(None);
        };
        let mut claimed = with_expiry(found)?;
        tx.prepare_cached(
            "UPDATE checkouts SET state = 'claimed', recorder_id = ?2 WHERE id = ?1",
        )?
        .execute(params![claimed.id, recorder_id])?;
        tx.commit()?;
        claimed.state = "claimed".into();
        claimed.recorder_id = Some(recorder_id.to_owned());
        Ok(Some(claimed))
    }

    /// Settles claimed request `id` as refused, saying why.
    pub fn refuse_checkout(&mut self, id: i64, why: &str) -> anyhow::Result<()> {
        settle(&self.conn, id, "refused", why)
    }

    /// Settles claimed request `id` as done: commits the handover record
    /// about `recorder_id` (made by `make` at its chain position) and marks
    /// the request done with `result`, in one transaction.
    pub fn checkout_done(
        &mut self,
        key: &SigningKey,
        recorder_id: &str,
        id: i64,
        result: &str,
        make: impl FnOnce(u64, Hash) -> RecordBody,
    ) -> anyhow::Result<RecordBody> {
        let tx = self.conn.transaction()?;
        let body = append_in(&tx, key, recorder_id, make)?;
        settle(&tx, id, "done", result)?;
        tx.commit()
            .context("committing a check-out to the buffer")?;
        Ok(body)
    }

    /// Puts requests claimed by a slot that never settled them (the agent
    /// stopped, the recorder was pulled mid-write) back to pending, so they
    /// are answered again.
    pub fn release_claims(&mut self, recorder_id: &str) -> anyhow::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE checkouts SET state = 'pending' WHERE state = 'claimed' AND recorder_id = ?1",
            )?
            .execute([recorder_id])?;
        Ok(())
    }

    /// When `recorder_id` was last checked out, if ever.
    pub fn last_checkout(&self, recorder_id: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        let at: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT MAX(done_at) FROM checkouts WHERE recorder_id = ?1 AND state = 'done'",
            )?
            .query_row([recorder_id], |r| r.get(0))?;
        at.map(|at| {
            DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("check-out of {recorder_id} has a malformed time {at:?}"))
        })
        .transpose()
    }

    /// At the agent's start: every claim is from a run that ended before
    /// settling it, so all go back to pending.
    pub fn release_all_claims(&mut self) -> anyhow::Result<usize> {
        Ok(self
            .conn
            .prepare_cached("UPDATE checkouts SET state = 'pending' WHERE state = 'claimed'")?
            .execute([])?)
    }

    /// Withdraws pending request `id` (the officer gave up waiting);
    /// returns whether it was still pending.
    pub fn withdraw_checkout(&mut self, id: i64) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE checkouts SET state = 'refused', result = 'withdrawn by the requester', done_at = ?2
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, now()])?
            == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(no: &str) -> Holder {
        Holder {
            officer_no: no.into(),
            unit_no: "500103000000".into(),
            officer_name: "张伟".into(),
            unit_name: "渝中区综合行政执法支队".into(),
        }
    }

    fn buffer() -> anyhow::Result<(tempfile::TempDir, Buffer)> {
        let dir = tempfile::tempdir()?;
        let b = Buffer::open(&dir.path().join("buffer.sqlite"))?;
        Ok((dir, b))
    }

    #[test]
    fn a_request_is_claimed_by_one_recorder_once_and_settled() -> anyhow::Result<()> {
        let (_d, mut b) = buffer()?;
        let later = Utc::now() + chrono::Duration::minutes(1);
        let id = b.request_checkout(&holder("010203"), None, later)?;
        assert!(
            b.claim_checkout("ZFY0001", false)?.is_none(),
            "not the best recorder"
        );
        let c = b
            .claim_checkout("ZFY0001", true)?
            .ok_or_else(|| anyhow::anyhow!("unclaimed"))?;
        assert_eq!((c.id, c.holder.officer_name.as_str()), (id, "张伟"));
        assert!(b.claim_checkout("ZFY0002", true)?.is_none(), "claimed once");
        b.refuse_checkout(id, "the recorder refused WriteZFYInfo")?;
        let c = b.checkout(id)?.ok_or_else(|| anyhow::anyhow!("gone"))?;
        assert_eq!(c.state, "refused");
        assert_eq!(c.recorder_id.as_deref(), Some("ZFY0001"));
        assert_eq!(
            c.result.as_deref(),
            Some("the recorder refused WriteZFYInfo")
        );
        Ok(())
    }

    #[test]
    fn a_named_recorder_answers_only_its_own_request_and_claims_survive_a_crash(
    ) -> anyhow::Result<()> {
        let (_d, mut b) = buffer()?;
        let later = Utc::now() + chrono::Duration::minutes(1);
        let id = b.request_checkout(&holder("010203"), Some("ZFY0002"), later)?;
        assert!(b.claim_checkout("ZFY0001", true)?.is_none());
        assert!(b.claim_checkout("ZFY0002", false)?.is_some());
        // The slot died before settling: the request is answered again.
        b.release_claims("ZFY0002")?;
        assert_eq!(b.checkout(id)?.map(|c| c.state), Some("pending".into()));
        assert!(b.claim_checkout("ZFY0002", false)?.is_some());
        Ok(())
    }

    #[test]
    fn an_expired_or_withdrawn_request_is_refused_not_answered() -> anyhow::Result<()> {
        let (_d, mut b) = buffer()?;
        let past = Utc::now() - chrono::Duration::seconds(1);
        let old = b.request_checkout(&holder("010203"), None, past)?;
        assert!(b.claim_checkout("ZFY0001", true)?.is_none());
        let c = b.checkout(old)?.ok_or_else(|| anyhow::anyhow!("gone"))?;
        assert_eq!(c.state, "refused");
        assert!(c.result.unwrap_or_default().contains("in time"));
        let later = Utc::now() + chrono::Duration::minutes(1);
        let id = b.request_checkout(&holder("010204"), None, later)?;
        assert!(b.withdraw_checkout(id)?);
        assert!(b.claim_checkout("ZFY0001", true)?.is_none());
        assert!(!b.withdraw_checkout(id)?, "already settled");
        Ok(())
    }
}
