//! Sensing coverage (感知覆盖率), issue 6: how much of enforcement is really
//! recorded, and why not where it is not. This first part is the pure
//! arithmetic every figure rests on — time spans and action coverage with
//! its causes — tested against hand-computed fixtures; the store queries,
//! API, alerts and dashboard build on it.

pub mod action;
pub mod geohash;
pub mod span;

#[cfg(test)]
mod fixtures;
