//! Rate limits: requests and tokens per minute, per provider and per caller, in front of every
//! call — with an in-process token-bucket store; the shared Redis store is in `redis.rs`.
//!
//! # How a call is counted
//!
//! Every limit is a token bucket of `limit` units that refills continuously at `limit` per
//! minute: a full bucket allows a burst of `limit`, then one unit every `60s / limit`.
//!
//! - **Requests per minute** take one unit when the call is admitted.
//! - **Tokens per minute** cannot be known before the reply, so the call reserves an estimate —
//!   [`estimate_prompt_tokens`] (about four characters per token) plus `max_tokens`, or
//!   [`RateLimitConfig::output_tokens_estimate`] when the request sets none — and settles
//!   against the reply's actual `usage.total_tokens()` afterwards: the difference is taken or
//!   given back. Between admission and settlement the bucket holds the estimate, so concurrent
//!   calls are judged by estimates (an approximation, documented as such). A reply that
//!   reports no usage keeps the estimate; a call that fails gives it back, except for the usage
//!   of a partial reply when one came.
//! - A request whose estimate exceeds the whole bucket waits for an empty bucket, then takes
//!   it all and leaves a debt later calls wait out, rather than never running.
//!
//! Limits apply per provider (shared by all its callers) and per caller — the request's
//! [`CallerKey`] extension, across providers; a call without a caller key meets only the
//! provider limits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use exllm_core::facade::estimate_prompt_tokens;
use exllm_core::{
    Acquire, CallerKey, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, Middleware, Next,
    RateLimitStore, Result, StreamEvent,
};
use futures_util::StreamExt;

/// Every limit here is per minute.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Requests and tokens per minute; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Calls per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input plus output) per minute.
    pub tokens_per_minute: Option<u64>,
}

impl Limits {
    /// No limit.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the calls per minute.
    pub fn requests_per_minute(mut self, n: u64) -> Self {
        self.requests_per_minute = Some(n);
        self
    }
    /// Sets the tokens per minute.
    pub fn tokens_per_minute(mut self, n: u64) -> Self {
        self.tokens_per_minute = Some(n);
        self
    }
    /// Whether nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none()
    }
}

/// What a call over a limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenLimited {
    /// Fail at once with [`ErrorKind::RateLimited`] carrying `retry_after` (what a gateway wants:
    /// its client decides).
    FailFast,
    /// Sleep until the buckets allow the call, for at most `max_wait` in all; a call that would
    /// need longer fails at once as with [`WhenLimited::FailFast`].
    Wait {
        /// The longest a call may wait.
        max_wait: Duration,
    },
}

/// Which limits apply, and what happens over them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Each provider's limits, shared by all its callers, by provider name.
    pub providers: BTreeMap<String, Limits>,
    /// The limits of each caller (by [`CallerKey`]) without an entry in `callers`.
    pub per_caller: Limits,
    /// Limits of particular callers, replacing `per_caller` for them.
    pub callers: BTreeMap<String, Limits>,
    /// Wait or fail fast. Default: fail fast.
    pub when_limited: WhenLimited,
    /// The output tokens reserved for a request that sets no `max_tokens`. Default 1024.
    pub output_tokens_estimate: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            providers: BTreeMap::new(),
            per_caller: Limits::default(),
            callers: BTreeMap::new(),
            when_limited: WhenLimited::FailFast,
            output_tokens_estimate: 1024,
        }
    }
}

impl RateLimitConfig {
    /// No limits yet; fail fast.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `provider`'s limits.
    pub fn provider(mut self, provider: impl Into<String>, limits: Limits) -> Self {
        self.providers.insert(provider.into(), limits);
        self
    }
    /// Sets the default limits of each caller.
    pub fn per_caller(mut self, limits: Limits) -> Self {
        self.per_caller = limits;
        self
    }
    /// Sets one caller's limits.
    pub fn caller(mut self, caller: impl Into<String>, limits: Limits) -> Self {
        self.callers.insert(caller.into(), limits);
        self
    }
    /// Fails calls over a limit at once.
    pub fn fail_fast(mut self) -> Self {
        self.when_limited = WhenLimited::FailFast;
        self
    }
    /// Lets calls over a limit wait up to `max_wait`.
    pub fn wait(mut self, max_wait: Duration) -> Self {
        self.when_limited = WhenLimited::Wait { max_wait };
        self
    }
    /// Sets the output tokens reserved for requests without `max_tokens`.
    pub fn output_tokens_estimate(mut self, tokens: u32) -> Self {
        self.output_tokens_estimate = tokens;
        self
    }

    /// Checks that no limit is zero (a bucket that never admits anything is a mistake, not a
    /// way to block a provider).
    fn validate(&self) -> Result<()> {
        let scopes = self
            .providers
            .iter()
            .map(|(name, limits)| (format!("provider `{name}`"), limits))
            .chain(std::iter::once((
                "each caller".to_owned(),
                &self.per_caller,
            )))
            .chain(
                self.callers
                    .values()
                    .map(|limits| ("a configured caller".to_owned(), limits)),
            );
        for (scope, limits) in scopes {
            for (name, value) in [
                ("requests_per_minute", limits.requests_per_minute),
                ("tokens_per_minute", limits.tokens_per_minute),
            ] {
                if value == Some(0) {
                    return Err(Error::config(format!(
                        "rate limit {name} for {scope} is 0; use at least 1, or no limit"
                    ))
                    .with_field(name));
                }
            }
        }
        Ok(())
    }
}

/// The rate-limit middleware: admits a call when every bucket it counts against allows it.
///
/// ```
/// use std::sync::Arc;
/// use exllm_infrastructure::ratelimit::{InMemoryRateLimitStore, Limits, RateLimit, RateLimitConfig};
///
/// let limit = RateLimit::new(
///     Arc::new(InMemoryRateLimitStore::new()),
///     RateLimitConfig::new()
///         .provider("openai", Limits::new().requests_per_minute(500).tokens_per_minute(200_000))
///         .per_caller(Limits::new().requests_per_minute(60)),
/// )?;
/// # Ok::<(), exllm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct RateLimit {
    store: Arc<dyn RateLimitStore>,
    config: RateLimitConfig,
}

impl RateLimit {
    /// The middleware over `store`, checking `config` first (a zero limit is a config error).
    pub fn new(store: Arc<dyn RateLimitStore>, config: RateLimitConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { store, config })
    }

    /// The middleware over a fresh in-process store.
    pub fn in_memory(config: RateLimitConfig) -> Result<Self> {
        Self::new(Arc::new(InMemoryRateLimitStore::new()), config)
    }

    /// The configuration in use.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The buckets a call to `provider` counts against, provider first.
    fn buckets(&self, provider: &str, request: &ChatRequest) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        if let Some(limits) = self.config.providers.get(provider) {
            push_buckets(
                &mut buckets,
                &format!("provider:{provider}"),
                limits,
                || format!("provider `{provider}`"),
            );
        }
        if let Some(CallerKey(caller)) = request.extensions.get::<CallerKey>() {
            let limits = self
                .config
                .callers
                .get(caller)
                .unwrap_or(&self.config.per_caller);
            // The caller's key stays out of messages: it may be all a client has to prove
            // who it is.
            push_buckets(&mut buckets, &format!("caller:{caller}"), limits, || {
                "this caller".to_owned()
            });
        }
        buckets
    }

    /// The tokens a request reserves: its prompt estimate plus the output it may produce.
    fn estimate(&self, request: &ChatRequest) -> u64 {
        let output = request
            .max_tokens
            .unwrap_or(self.config.output_tokens_estimate);
        estimate_prompt_tokens(request).saturating_add(u64::from(output))
    }

    /// Takes from every bucket, waiting or failing as configured; returns the token
    /// reservations to settle after the call.
    async fn admit(&self, provider: &str, request: &ChatRequest) -> Result<Reservation> {
        let buckets = self.buckets(provider, request);
        let tokens = if buckets.iter().any(|b| b.unit == Unit::Tokens) {
            self.estimate(request)
        } else {
            0
        };
        let started = tokio::time::Instant::now();
        loop {
            let Some((wait, bucket)) = self.take_all(&buckets, tokens).await? else {
                let taken = buckets
                    .into_iter()
                    .filter(|b| b.unit == Unit::Tokens)
                    .map(|b| (b.key, b.limit, tokens))
                    .collect();
                return Ok(Reservation {
                    store: Arc::clone(&self.store),
                    taken,
                });
            };
            match self.config.when_limited {
                WhenLimited::Wait { max_wait } if started.elapsed() + wait <= max_wait => {
                    tracing::debug!(
                        provider,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "rate limit reached; waiting"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(limited(provider, &bucket, wait)),
            }
        }
    }

    /// Takes from each bucket in turn. When one refuses, gives back what the earlier ones
    /// granted (so a refused call costs nothing) and returns the wait and the bucket.
    async fn take_all(
        &self,
        buckets: &[Bucket],
        tokens: u64,
    ) -> Result<Option<(Duration, Bucket)>> {
        for (i, bucket) in buckets.iter().enumerate() {
            let amount = bucket.amount(tokens);
            match self
                .store
                .acquire(&bucket.key, amount, bucket.limit, WINDOW)
                .await?
            {
                Acquire::Granted => {}
                Acquire::Wait(wait) => {
                    for granted in &buckets[..i] {
                        let back = -i64::try_from(granted.amount(tokens)).unwrap_or(i64::MAX);
                        if let Err(err) = self
                            .store
                            .settle(&granted.key, back, granted.limit, WINDOW)
                            .await
                        {
                            tracing::warn!(error = %err, "could not give back a rate-limit unit");
                        }
                    }
                    // A zero wait would spin: the store rounds, but never trust it to.
                    let wait = wait.max(Duration::from_millis(1));
                    return Ok(Some((wait, bucket.clone())));
                }
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Middleware for RateLimit {
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        let provider = next.provider().name().to_owned();
        let reservation = self.admit(&provider, &request).await?;
        let result = next.run(request).await;
        match &result {
            Ok(response) => reservation.settle(Settled::Reply(response)).await,
            Err(err) => reservation.settle(Settled::Failed(err)).await,
        }
        result
    }

    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        let provider = next.provider().name().to_owned();
        let reservation = self.admit(&provider, &request).await?;
        let stream = match next.run_stream(request).await {
            Ok(stream) => stream,
            Err(err) => {
                reservation.settle(Settled::Failed(&err)).await;
                return Err(err);
            }
        };
        if reservation.taken.is_empty() {
            return Ok(stream);
        }
        // Settle when the stream ends; a stream dropped before its end keeps the estimate,
        // since the provider may well have produced (and billed) it.
        let settled =
            futures_util::stream::unfold(Some((stream, reservation)), |state| async move {
                let (mut stream, reservation) = state?;
                match stream.next().await {
                    Some(Ok(StreamEvent::Done(response))) => {
                        reservation.settle(Settled::Reply(&response)).await;
                        Some((Ok(StreamEvent::Done(response)), None))
                    }
                    Some(Ok(event)) => Some((Ok(event), Some((stream, reservation)))),
                    Some(Err(err)) => {
                        reservation.settle(Settled::Failed(&err)).await;
                        Some((Err(err), None))
                    }
                    None => None,
                }
            });
        Ok(Box::pin(settled))
    }
}

/// One bucket a call counts against.
#[derive(Debug, Clone)]
struct Bucket {
    key: String,
    limit: u64,
    unit: Unit,
    /// Whose limit it is, for messages (`provider \`openai\``, `this caller`).
    scope: String,
}

impl Bucket {
    fn amount(&self, tokens: u64) -> u64 {
        match self.unit {
            Unit::Requests => 1,
            Unit::Tokens => tokens,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Requests,
    Tokens,
}

fn push_buckets(buckets: &mut Vec<Bucket>, key: &str, limits: &Limits, scope: impl Fn() -> String) {
    if let Some(limit) = limits.requests_per_minute {
        buckets.push(Bucket {
            key: format!("{key}:rpm"),
            limit,
            unit: Unit::Requests,
            scope: scope(),
        });
    }
    if let Some(limit) = limits.tokens_per_minute {
        buckets.push(Bucket {
            key: format!("{key}:tpm"),
            limit,
            unit: Unit::Tokens,
            scope: scope(),
        });
    }
}

fn limited(provider: &str, bucket: &Bucket, wait: Duration) -> Error {
    let what = match bucket.unit {
        Unit::Requests => "requests",
        Unit::Tokens => "tokens",
    };
    Error::new(
        ErrorKind::RateLimited,
        format!(
            "rate limit of {} {what} per minute for {} reached; retry in {:.1}s",
            bucket.limit,
            bucket.scope,
            wait.as_secs_f64()
        ),
    )
    .with_provider(provider)
    .with_retry_after(wait)
}

/// How a call ended, for settling its token reservations.
#[derive(Clone, Copy)]
enum Settled<'a> {
    Reply(&'a ChatResponse),
    Failed(&'a Error),
}

/// The tokens a call reserved, to settle against its actual usage.
struct Reservation {
    store: Arc<dyn RateLimitStore>,
    /// (bucket key, limit, tokens reserved).
    taken: Vec<(String, u64, u64)>,
}

impl Reservation {
    async fn settle(&self, how: Settled<'_>) {
        let usage = match how {
            Settled::Reply(response) => response.usage,
            Settled::Failed(err) => err.partial_response().map(|r| r.usage).unwrap_or_default(),
        };
        for (key, limit, reserved) in &self.taken {
            let actual = match how {
                // No usage reported: the estimate is the best figure there is.
                Settled::Reply(_) if usage.is_empty() => *reserved,
                _ => usage.total_tokens(),
            };
            let delta = i128::from(actual) - i128::from(*reserved);
            let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
            if delta == 0 {
                continue;
            }
            if let Err(err) = self.store.settle(key, delta, *limit, WINDOW).await {
                tracing::warn!(error = %err, "could not settle a token reservation");
            }
        }
    }
}

/// The in-process rate-limit store: a token bucket per key, on tokio's clock (so paused test
/// time drives it).
///
/// Not `governor`: its quotas are fixed per limiter and it cannot give units back, while this
/// port passes the limit with each call and tokens-per-minute settlement must return or add
/// units after the reply; a bucket is a few lines of arithmetic.
#[derive(Debug, Default)]
pub struct InMemoryRateLimitStore {
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<String, Level>,
    /// Prune drained buckets when the map grows past this many.
    prune_at: usize,
}

/// A bucket's fill (units in use) at an instant; it drains at `limit / window`.
#[derive(Debug, Clone, Copy)]
struct Level {
    used: f64,
    at: tokio::time::Instant,
}

/// Floating-point slack when comparing fills, so a wait computed to the millisecond suffices.
const EPSILON: f64 = 1e-6;

impl InMemoryRateLimitStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn update<T>(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        change: impl FnOnce(&mut f64) -> T,
    ) -> Result<T> {
        let rate = drain_rate(limit, window)?;
        let now = tokio::time::Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.map.len() >= buckets.prune_at.max(1024) {
            buckets
                .map
                .retain(|_, level| drained(level, rate, now) > 0.0);
            buckets.prune_at = buckets.map.len() * 2;
        }
        let level = buckets
            .map
            .entry(key.to_owned())
            .or_insert(Level { used: 0.0, at: now });
        let mut used = drained(level, rate, now);
        let out = change(&mut used);
        *level = Level { used, at: now };
        Ok(out)
    }
}

/// Units per second a bucket of `limit` per `window` drains at.
fn drain_rate(limit: u64, window: Duration) -> Result<f64> {
    if limit == 0 || window.is_zero() {
        return Err(Error::config(format!(
            "a rate limit needs a positive limit and window (got {limit} per {window:?})"
        )));
    }
    #[allow(clippy::cast_precision_loss)] // limits far below 2^52
    Ok(limit as f64 / window.as_secs_f64())
}

fn drained(level: &Level, rate: f64, now: tokio::time::Instant) -> f64 {
    let elapsed = now.saturating_duration_since(level.at).as_secs_f64();
    (level.used - elapsed * rate).max(0.0)
}

/// The wait for `excess` units to drain, rounded up to the next millisecond (less a hair of
/// floating-point noise, which [`EPSILON`] absorbs when the call comes back).
fn wait_for(excess: f64, rate: f64) -> Duration {
    let ms = (excess / rate * 1000.0 - 1e-6).ceil().max(1.0);
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(WINDOW)
}

#[async_trait]
impl RateLimitStore for InMemoryRateLimitStore {
    async fn acquire(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Acquire> {
        let rate = drain_rate(limit, window)?;
        #[allow(clippy::cast_precision_loss)]
        let (amount, limit_f) = (amount as f64, limit as f64);
        self.update(key, limit, window, |used| {
            // An amount over the whole bucket waits for an empty one (see the module docs).
            let need = amount.min(limit_f);
            if *used + need <= limit_f + EPSILON {
                *used += amount;
                Acquire::Granted
            } else {
                Acquire::Wait(wait_for(*used + need - limit_f, rate))
            }
        })
    }

    async fn settle(&self, key: &str, delta: i64, limit: u64, window: Duration) -> Result<()> {
        #[allow(clippy::cast_precision_loss)]
        let delta = delta as f64;
        self.update(key, limit, window, |used| {
            *used = (*used + delta).max(0.0);
        })
    }
}
