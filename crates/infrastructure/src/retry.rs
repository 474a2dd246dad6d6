//! `Retry`: retries failed attempts like the official SDKs — exponential backoff with full
//! jitter, the provider's retry-after honoured, a retry budget — and the order the
//! resilience middleware go in.
//!
//! # Pipeline order
//!
//! Middleware run in the order they are added to the builder, the first outermost. The
//! built-in ones go in this order:
//!
//! ```text
//! Timeout (total deadline, stream idle)   outermost: bounds everything below, retries included
//!  → Cache                                a hit costs no limit, no provider call
//!   → RateLimit                           counts calls, not attempts
//!    → Fallback                           another provider when the rest below gave up
//!     → CircuitBreaker                    per provider: fails fast while it is down
//!      → Retry                            attempts on the same provider
//!       → UsageRecorder                   innermost: writes every attempt to the ledger
//!        → provider (priced by the facade)
//! ```
//!
//! Why this order: the breaker sees one outcome per call after the retries (a 503 that a retry
//! fixed is no outage), and an open circuit (`CircuitOpen`) is what sends the fallback to the
//! next provider without touching the broken one. The fallback's targets run through the same
//! breaker, retry and recorder, so each provider keeps its own circuit and every attempt on
//! every provider is recorded exactly once.
//!
//! # What is retried
//!
//! Errors whose [`Error::is_retryable`] says so: 408, 409, 429, 5xx, 529, timeouts and
//! transport failures, unless the provider's `x-should-retry` said otherwise (the executor
//! folds that header into `is_retryable`). Never quota exhaustion, auth, invalid requests or
//! context-length errors. A stream is retried only when it fails before its first event; once
//! an event has been handed on, a failure ends the stream with the typed error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use exllm_core::{
    ChatRequest, ChatResponse, ChatStream, Error, Middleware, Next, Result, StreamEvent,
};
use futures_util::StreamExt;

use crate::recorder::Attempt;

/// How [`Retry`] retries.
///
/// ```
/// use std::time::Duration;
/// use exllm_infrastructure::retry::{Retry, RetryConfig};
///
/// let retry = Retry::new(RetryConfig {
///     max_retries: 4,
///     max_delay: Duration::from_secs(20),
///     ..RetryConfig::default()
/// });
/// # let _ = retry;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt (the official SDKs' default: 2).
    pub max_retries: u32,
    /// The backoff before the first retry; it doubles for each further one.
    pub base_delay: Duration,
    /// The largest backoff (before jitter).
    pub max_delay: Duration,
    /// The longest retry-after honoured: a provider asking for a longer wait gets no retry,
    /// and the caller the typed error (with its `retry_after`) at once.
    pub max_wait: Duration,
    /// The retry budget; `None` retries every failure that qualifies.
    pub budget: Option<RetryBudget>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_wait: Duration::from_secs(60),
            budget: Some(RetryBudget::default()),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn disabled() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }
}

/// A cap on retries relative to calls, so that an outage does not multiply the load on a
/// struggling provider: a token bucket every call adds `ratio` tokens to and every retry
/// takes one from, holding at most `burst` tokens (and starting full).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Retries allowed per call in the long run (0.2: retries add at most 20 %).
    pub ratio: f64,
    /// Retries allowed in a burst, e.g. right after start.
    pub burst: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            burst: 10,
        }
    }
}

/// The retry middleware. Clones share one retry budget.
///
/// Each attempt's request carries [`Attempt`] (1, 2, …) for the recorder; the response's
/// `attempts` says how many it took (for streams, the `Done` response's).
#[derive(Debug, Clone)]
pub struct Retry {
    config: RetryConfig,
    bucket: Arc<Bucket>,
}

impl Default for Retry {
    fn default() -> Self {
        Self::new(RetryConfig::default())
    }
}

impl Retry {
    /// A retry middleware configured by `config`.
    pub fn new(config: RetryConfig) -> Self {
        let bucket = Arc::new(Bucket::new(config.budget));
        Self { config, bucket }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// How long to wait before retrying after `err` on attempt `attempt`, or the error back
    /// when the call must give up.
    fn plan(&self, err: Error, attempt: u32) -> Result<Duration> {
        if !err.is_retryable() || attempt > self.config.max_retries {
            return Err(err);
        }
        let wait = match err.retry_after() {
            Some(wait) if wait > self.config.max_wait => {
                tracing::debug!(
                    ?wait,
                    max_wait = ?self.config.max_wait,
                    "the provider asks for a longer wait than allowed; not retrying"
                );
                return Err(err);
            }
            Some(wait) => wait,
            None => self.backoff(attempt),
        };
        if !self.bucket.withdraw() {
            tracing::debug!("retry budget used up; not retrying");
            return Err(err);
        }
        tracing::debug!(
            attempt,
            ?wait,
            kind = %err.kind(),
            provider = err.provider().unwrap_or(""),
            "retrying"
        );
        Ok(wait)
    }

    /// Full jitter: a uniformly random wait up to `base · 2^(attempt-1)`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1_u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let ceiling = self
            .config
            .base_delay
            .saturating_mul(factor)
            .min(self.config.max_delay);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(random_up_to(micros))
    }
}

#[async_trait]
impl Middleware for Retry {
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        self.bucket.deposit();
        let mut attempt = 1;
        loop {
            let mut this_try = request.clone();
            this_try.extensions.insert(Attempt(attempt));
            match next.run(this_try).await {
                Ok(mut response) => {
                    response.attempts = attempt;
                    return Ok(response);
                }
                Err(err) => {
                    let wait = self.plan(err, attempt)?;
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        self.bucket.deposit();
        let mut attempt = 1;
        loop {
            let mut this_try = request.clone();
            this_try.extensions.insert(Attempt(attempt));
            let err = match next.run_stream(this_try).await {
                Ok(stream) => match first_event(stream).await {
                    First::Event(event, rest) => {
                        return Ok(with_attempts(prepend(event, rest), attempt));
                    }
                    First::Ended => return Ok(Box::pin(futures_util::stream::empty())),
                    First::Failed(err) => match self.plan(err, attempt) {
                        Ok(wait) => {
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                            continue;
                        }
                        // Given up: the error goes on as the stream's only item, as the
                        // provider's stream would have carried it.
                        Err(err) => return Ok(failed(err)),
                    },
                },
                Err(err) => err,
            };
            let wait = self.plan(err, attempt)?;
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// The start of a stream: its first event and the rest, its first item's error, or nothing.
pub(crate) enum First {
    Event(StreamEvent, ChatStream),
    Failed(Error),
    Ended,
}

/// Waits for the first item of `stream`: until it arrives, a failure may still be retried
/// (or sent to a fallback) without the consumer having seen anything.
pub(crate) async fn first_event(mut stream: ChatStream) -> First {
    match stream.next().await {
        Some(Ok(event)) => First::Event(event, stream),
        Some(Err(err)) => First::Failed(err),
        None => First::Ended,
    }
}

/// `first`, then the rest of the stream.
pub(crate) fn prepend(first: StreamEvent, rest: ChatStream) -> ChatStream {
    Box::pin(futures_util::stream::once(std::future::ready(Ok(first))).chain(rest))
}

/// A stream of one error.
pub(crate) fn failed(err: Error) -> ChatStream {
    Box::pin(futures_util::stream::once(std::future::ready(Err(err))))
}

/// `stream` with `attempts` set on its final response.
fn with_attempts(stream: ChatStream, attempts: u32) -> ChatStream {
    Box::pin(stream.map(move |item| match item {
        Ok(StreamEvent::Done(mut response)) => {
            response.attempts = attempts;
            Ok(StreamEvent::Done(response))
        }
        other => other,
    }))
}

/// The retry budget's token bucket, in thousandths of a retry so that fractional deposits
/// add up exactly.
#[derive(Debug)]
struct Bucket {
    /// `None`: no budget, every retry allowed.
    limits: Option<(u64, u64)>,
    millis: Mutex<u64>,
}

impl Bucket {
    /// Milli-tokens per retry.
    const RETRY: u64 = 1000;

    fn new(budget: Option<RetryBudget>) -> Self {
        let limits = budget.map(|b| {
            let deposit = (b.ratio.clamp(0.0, 1000.0) * Self::RETRY as f64).round() as u64;
            let capacity = u64::from(b.burst).saturating_mul(Self::RETRY);
            (deposit, capacity)
        });
        let start = limits.map_or(0, |(_, capacity)| capacity);
        Self {
            limits,
            millis: Mutex::new(start),
        }
    }

    fn deposit(&self) {
        if let Some((deposit, capacity)) = self.limits {
            let mut millis = self.millis.lock().unwrap_or_else(PoisonError::into_inner);
            *millis = millis.saturating_add(deposit).min(capacity);
        }
    }

    fn withdraw(&self) -> bool {
        if self.limits.is_none() {
            return true;
        }
        let mut millis = self.millis.lock().unwrap_or_else(PoisonError::into_inner);
        match millis.checked_sub(Self::RETRY) {
            Some(left) => {
                *millis = left;
                true
            }
            None => false,
        }
    }
}

/// A uniformly distributed number in `0..=max`, from a SplitMix64 step seeded per call by the
/// clock and a global sequence: jitter only has to decorrelate clients, not be unpredictable.
fn random_up_to(max: u64) -> u64 {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into());
    let mut z = SEQUENCE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(clock);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    match max.checked_add(1) {
        Some(bound) => z % bound,
        None => z,
    }
}

#[cfg(test)]
mod tests;
