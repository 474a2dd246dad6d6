//! Unit tests of the retry internals: backoff bounds, the budget's bucket, the jitter.

use super::*;

#[test]
fn backoff_stays_under_its_ceiling_and_the_cap() {
    let retry = Retry::default();
    for attempt in 1..40 {
        let ceiling = Duration::from_millis(500)
            .saturating_mul(1_u32.checked_shl(attempt - 1).unwrap_or(u32::MAX))
            .min(Duration::from_secs(8));
        for _ in 0..50 {
            assert!(retry.backoff(attempt) <= ceiling);
        }
    }
}

#[test]
fn the_budget_allows_a_burst_then_a_share_of_calls() {
    let bucket = Bucket::new(Some(RetryBudget {
        ratio: 0.2,
        burst: 2,
    }));
    assert!(bucket.withdraw());
    assert!(bucket.withdraw());
    assert!(!bucket.withdraw());
    for _ in 0..4 {
        bucket.deposit();
    }
    assert!(!bucket.withdraw(), "four calls earn 0.8 of a retry");
    bucket.deposit();
    assert!(bucket.withdraw(), "five calls earn one retry");
    let unlimited = Bucket::new(None);
    assert!((0..100).all(|_| unlimited.withdraw()));
}

#[test]
fn jitter_spreads_over_the_range() {
    let values: std::collections::BTreeSet<u64> = (0..200).map(|_| random_up_to(9)).collect();
    assert!(values.len() > 5, "{values:?}");
    assert!(values.iter().all(|v| *v <= 9));
    assert_eq!(random_up_to(0), 0);
}
