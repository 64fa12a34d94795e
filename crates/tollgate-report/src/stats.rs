//! Exact order statistics. Every percentile in the report uses the nearest-rank method on the
//! full, sorted sample (no sketches, no interpolation): p-th percentile = the value at rank
//! ⌈p/100 × n⌉. It is the easiest definition to check by hand, and the sample sizes of a gateway
//! log fit in memory.

use serde::Serialize;

/// Stated in every rendering next to percentile tables.
pub const PERCENTILE_METHOD: &str = "nearest-rank";

/// min/avg/p50/p95/p99/max of one sample, in the sample's unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub avg: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// The nearest-rank percentile of an ascending sample; `None` when it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Sorts the sample in place and summarises it; `None` when it is empty.
pub fn summarize(values: &mut [f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let sum: f64 = values.iter().sum();
    Some(Summary {
        count: values.len() as u64,
        min: values[0],
        avg: sum / values.len() as f64,
        p50: percentile(values, 50.0)?,
        p95: percentile(values, 95.0)?,
        p99: percentile(values, 99.0)?,
        max: values[values.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_by_hand() {
        // n = 10: p50 → rank 5, p95 → rank 10 (⌈9.5⌉), p99 → rank 10.
        let mut v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = summarize(&mut v).unwrap();
        assert_eq!((s.min, s.p50, s.p95, s.p99, s.max), (1.0, 5.0, 10.0, 10.0, 10.0));
        assert_eq!(s.avg, 5.5);
        // n = 20: p95 → rank 19.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }
}
