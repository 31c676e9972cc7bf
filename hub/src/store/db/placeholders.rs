//! SQLite's placeholders (`?`, `?NNN`, `:name`) rewritten as PostgreSQL's
//! `$N`, so one query text serves both engines. Quoted text, quoted names
//! and comments are left alone, and so is PostgreSQL's `::` cast.

use super::{Error, Result};

/// A query rewritten for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The query with `$N` placeholders.
    pub sql: String,
    /// For named placeholders: the name behind each `$N`, in order.
    pub names: Vec<String>,
}

/// Rewrites the placeholders of `sql`. A query mixes numbered and named
/// placeholders at its peril; this refuses the mix.
pub fn rewrite(sql: &str) -> Result<Rewritten> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut names: Vec<String> = Vec::new();
    let mut next_bare = 0usize;
    let mut numbered = false;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            b'?' => {
                out.push_str(&sql[copied..i]);
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                let n = if end > start {
                    sql[start..end]
                        .parse::<usize>()
                        .map_err(|_| Error::Query(format!("bad placeholder in {sql:?}")))?
                } else {
                    next_bare += 1;
                    next_bare
                };
                next_bare = next_bare.max(n);
                numbered = true;
                out.push_str(&format!("${n}"));
                i = end;
                copied = i;
            }
            b':' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                out.push_str(&sql[copied..i]);
                let start = i;
                let mut end = i + 1;
                while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                    end += 1;
                }
                let name = &sql[start..end];
                let n = match names.iter().position(|x| x == name) {
                    Some(p) => p + 1,
                    None => {
                        names.push(name.to_owned());
                        names.len()
                    }
                };
                out.push_str(&format!("${n}"));
                i = end;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    if numbered && !names.is_empty() {
        return Err(Error::Query(format!(
            "query mixes numbered and named placeholders: {sql:?}"
        )));
    }
    Ok(Rewritten { sql: out, names })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_bare_and_named_placeholders_become_dollar_numbers() {
        let r = rewrite("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1").unwrap();
        assert_eq!(r.sql, "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1");
        assert!(r.names.is_empty());
        assert_eq!(
            rewrite("VALUES (?, ?, ?)").unwrap().sql,
            "VALUES ($1, $2, $3)"
        );
        let r = rewrite("WHERE (:unit IS NULL OR u = :unit) AND t >= :from").unwrap();
        assert_eq!(r.sql, "WHERE ($1 IS NULL OR u = $1) AND t >= $2");
        assert_eq!(r.names, [":unit", ":from"]);
    }

    #[test]
    fn quoted_text_comments_and_casts_are_left_alone() {
        let sql = "SELECT '?1 :x '' ?', \"a?b\", x::bigint -- what ?3 :y\nFROM t WHERE a = ?1";
        let r = rewrite(sql).unwrap();
        assert_eq!(
            r.sql,
            "SELECT '?1 :x '' ?', \"a?b\", x::bigint -- what ?3 :y\nFROM t WHERE a = $1"
        );
        assert!(rewrite("WHERE a = ?1 AND b = :b").is_err());
    }
}
