//! Which file indexes of a recorder are unaccounted for: numbered by the
//! recorder, not on it now, never copied, not yet reported missing.

/// Missing ranges in `baseline+1..=top`, where `known` are indexes listed
/// now or copied before and `reported` are ranges already reported.
pub fn missing(baseline: u32, known: &[u32], reported: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let top = known.iter().copied().max().unwrap_or(baseline);
    let mut covered: Vec<(u32, u32)> = known.iter().map(|&i| (i, i)).collect();
    covered.extend_from_slice(reported);
    covered.sort_unstable();
    let mut out = Vec::new();
    let mut next = u64::from(baseline) + 1;
    for (from, to) in covered {
        if u64::from(from) > next && next <= u64::from(top) {
            let end = (u64::from(from) - 1).min(u64::from(top));
            out.push((next as u32, end as u32));
        }
        next = next.max(u64::from(to) + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::missing;

    #[test]
    fn holes_between_known_indexes_are_missing_once() {
        assert_eq!(missing(0, &[1, 2, 3], &[]), vec![]);
        assert_eq!(missing(0, &[1, 4, 5, 9], &[]), vec![(2, 3), (6, 8)]);
        assert_eq!(missing(0, &[1, 4, 5, 9], &[(2, 3)]), vec![(6, 8)]);
        assert_eq!(missing(10, &[12], &[]), vec![(11, 11)]);
        assert_eq!(
            missing(10, &[], &[]),
            vec![],
            "an empty recorder owes nothing new"
        );
        assert_eq!(missing(0, &[3, 3, 1], &[(2, 2)]), vec![]);
        // A hostile index does not make the scan walk four billion numbers.
        assert_eq!(missing(0, &[1, u32::MAX], &[]), vec![(2, u32::MAX - 1)]);
    }
}
