//! Time spans in milliseconds since the Unix epoch, and the arithmetic
//! coverage needs: the union of many spans, and how much of one span a
//! union covers. Half-open: `[start, end)`, so two recordings that touch
//! do not count the shared instant twice.

use serde::Serialize;

/// `[start, end)`, milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    /// First millisecond inside.
    pub start: i64,
    /// First millisecond after.
    pub end: i64,
}

impl Span {
    /// A span; an end before the start gives an empty span at `start`.
    pub fn new(start: i64, end: i64) -> Self {
        Self {
            start,
            end: end.max(start),
        }
    }

    /// Length in milliseconds.
    pub fn len(self) -> i64 {
        self.end - self.start
    }

    /// Whether it has no length.
    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// The part of `self` inside `other`, if any.
    pub fn intersect(self, other: Span) -> Option<Span> {
        let s = Span::new(self.start.max(other.start), self.end.min(other.end));
        (!s.is_empty()).then_some(s)
    }

    /// Whether the two share any time.
    pub fn overlaps(self, other: Span) -> bool {
        self.intersect(other).is_some()
    }

    /// Moved by `ms`.
    pub fn shifted(self, ms: i64) -> Span {
        Span::new(self.start - ms, self.end - ms)
    }
}

/// The union of `spans`: sorted, disjoint, not touching, empty ones dropped.
pub fn union(spans: impl IntoIterator<Item = Span>) -> Vec<Span> {
    let mut all: Vec<Span> = spans.into_iter().filter(|s| !s.is_empty()).collect();
    all.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// Milliseconds of `target` inside the union `covered` (as [`union`] returns it).
pub fn covered_ms(target: Span, covered: &[Span]) -> i64 {
    // The union is sorted: skip what ends before the target starts.
    let from = covered.partition_point(|c| c.end <= target.start);
    covered[from..]
        .iter()
        .take_while(|c| c.start < target.end)
        .filter_map(|c| c.intersect(target))
        .map(Span::len)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overlapping_and_touching_recordings_count_once() {
        let u = union([
            Span::new(10, 20),
            Span::new(15, 30),
            Span::new(30, 40),
            Span::new(50, 50),
            Span::new(60, 70),
        ]);
        assert_eq!(u, vec![Span::new(10, 40), Span::new(60, 70)]);
        assert_eq!(covered_ms(Span::new(0, 100), &u), 40);
        assert_eq!(covered_ms(Span::new(35, 65), &u), 10);
        assert_eq!(covered_ms(Span::new(40, 60), &u), 0);
    }

    fn spans() -> impl Strategy<Value = Vec<Span>> {
        proptest::collection::vec(
            (0i64..1_000, 0i64..200).prop_map(|(s, l)| Span::new(s, s + l)),
            0..30,
        )
    }

    proptest! {
        #[test]
        fn coverage_never_exceeds_the_target_and_never_falls_when_a_span_is_added(
            base in spans(),
            extra in (0i64..1_000, 0i64..200),
            target in (0i64..1_000, 0i64..400),
        ) {
            let target = Span::new(target.0, target.0 + target.1);
            let before = covered_ms(target, &union(base.clone()));
            let mut more = base.clone();
            more.push(Span::new(extra.0, extra.0 + extra.1));
            let after = covered_ms(target, &union(more));
            prop_assert!(before <= target.len() && after <= target.len());
            prop_assert!(after >= before);
        }

        #[test]
        fn the_union_is_sorted_disjoint_and_covers_exactly_the_same_milliseconds(base in spans()) {
            let u = union(base.clone());
            for w in u.windows(2) {
                prop_assert!(w[0].end < w[1].start);
            }
            for ms in 0..1_200i64 {
                let inside = base.iter().any(|s| s.start <= ms && ms < s.end);
                let in_union = u.iter().any(|s| s.start <= ms && ms < s.end);
                prop_assert_eq!(inside, in_union);
            }
        }
    }
}
