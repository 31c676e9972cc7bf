//! API tokens with roles. A token is shown once, when created; the hub
//! keeps only its SHA-256, so a copy of the store does not hand out access.

use super::db::{params, OptionalExtension};
use serde::Serialize;

use super::{now, Store};

/// What a token may do. Checked per endpoint by the API (`api::auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including tokens.
    Admin,
    /// Fleet management (enrollment, assignments, units, officers) and every read but the audit log.
    Operator,
    /// The supervision platform: reads records, media, devices, alerts; changes nothing.
    Platform,
    /// Reads the audit log, records' metadata, devices and alerts; not the media itself.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Platform, Role::Auditor];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Platform => "platform",
            Self::Auditor => "auditor",
        }
    }

    /// The role with this name; the error lists the roles there are.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                anyhow::anyhow!("role {s:?}: expected admin, operator, platform or auditor")
            })
    }
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    /// Token id (also the token's visible prefix).
    pub id: String,
    /// Who or what holds it, e.g. `platform-prod`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When created.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When revoked, if it is.
    pub revoked_at: Option<String>,
}

/// A token just created: the secret is in `token`, shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    /// The token as listed.
    #[serde(flatten)]
    pub row: TokenRow,
    /// The bearer token. Not stored; only its SHA-256 is.
    pub token: String,
}

/// SHA-256 (hex) of a token, as stored.
pub fn token_hash(token: &str) -> String {
    evsync_protocol::chain::Hash::of(token.as_bytes()).to_hex()
}

/// A token name: 1 to 64 of `A-Z a-z 0-9 . _ @ : -`, starting with a
/// letter or digit (it shows in logs, the audit log and custody trails).
pub fn valid_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._@:-".contains(c);
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(ok)
}

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(hex::encode(bytes))
}

fn token_row(r: &super::db::Row) -> super::db::Result<TokenRow> {
    let role: String = r.get(2)?;
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).map_err(|e| super::db::Error::conversion(2, e.to_string()))?,
        created_at: r.get(3)?,
        created_by: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

const COLUMNS: &str = "id, name, role, created_at, created_by, revoked_at";

impl Store {
    /// Creates a token for `name` with `role`.
    pub fn create_token(&mut self, name: &str, role: Role, by: &str) -> anyhow::Result<NewToken> {
        if !valid_name(name) {
            anyhow::bail!(
                "token name {name:?}: expected 1 to 64 of A-Z a-z 0-9 . _ @ : -, starting with a letter or digit"
            );
        }
        let id = random_hex(4)?;
        let token = format!("evs_{id}_{}", random_hex(24)?);
        let t = now();
        self.conn().execute(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, name, role.as_str(), token_hash(&token), t, by],
        )?;
        Ok(NewToken {
            row: TokenRow {
                id,
                name: name.to_owned(),
                role,
                created_at: t,
                created_by: by.to_owned(),
                revoked_at: None,
            },
            token,
        })
    }

    /// Every token, revoked ones too, oldest first.
    pub fn tokens(&self) -> anyhow::Result<Vec<TokenRow>> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], token_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The live (not revoked) token with this SHA-256.
    pub fn token_by_hash(&self, hash: &str) -> anyhow::Result<Option<TokenRow>> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL"
            ))?
            .query_row([hash], token_row)
            .optional()?)
    }

    /// Whether the token with this id exists and is not revoked.
    pub fn token_live(&self, id: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM api_tokens WHERE id = ?1 AND revoked_at IS NULL")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Revokes a token by id; it stops working at once. Errors name an unknown id.
    pub fn revoke_token(&mut self, id: &str) -> anyhow::Result<TokenRow> {
        let n = self.conn().execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now()],
        )?;
        let row = self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1"))?
            .query_row([id], token_row)
            .optional()?;
        match (n, row) {
            (_, None) => anyhow::bail!("no token with id {id:?} (see `evsync-hub tokens list`)"),
            (_, Some(r)) => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_hash_until_revoked_and_only_its_hash_is_stored() {
        for e in super::super::tests::engines() {
            let (_dir, mut s) = super::super::tests::store_on(&e);
            let t = s.create_token("platform-1", Role::Platform, "cli").unwrap();
            let found = s.token_by_hash(&token_hash(&t.token)).unwrap().unwrap();
            assert_eq!(
                (found.id.as_str(), found.role),
                (t.row.id.as_str(), Role::Platform)
            );
            let stored: i64 = s
                .conn()
                .query_row(
                    "SELECT COUNT(*) FROM api_tokens WHERE token_hash = ?1 OR name = ?1",
                    [&t.token],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(stored, 0, "the token itself is stored");
            s.revoke_token(&t.row.id).unwrap();
            assert!(s.token_by_hash(&token_hash(&t.token)).unwrap().is_none());
            assert!(s.revoke_token("nope").is_err());
            for bad in ["", " platform", "-x", "名字", "a\u{8a}", &"a".repeat(65)] {
                assert!(s.create_token(bad, Role::Admin, "cli").is_err(), "{bad:?}");
            }
            assert!(s
                .create_token("platform-prod@cq:2", Role::Admin, "cli")
                .is_ok());
        }
    }
}
