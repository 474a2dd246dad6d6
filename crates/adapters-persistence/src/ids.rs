//! Fresh conversation ids and the clock the stores stamp rows with.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh conversation id: `conv_`, the creation time in milliseconds as 12 hex digits (so ids
/// sort by creation), then 16 random hex digits (so ids from different processes sharing one
/// database never collide).
pub(crate) fn fresh_conversation_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = now_ms();
    // `RandomState::new()` is seeded from the operating system once per thread and varies per
    // call, which is all the randomness an id needs; the counter and the clock make two ids of
    // one process differ even if the hasher's keys ever repeated.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(now_nanos());
    hasher.write_u32(std::process::id());
    format!("conv_{millis:012x}{:016x}", hasher.finish())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    u64::try_from(now_nanos() / 1_000_000).unwrap_or(u64::MAX)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
