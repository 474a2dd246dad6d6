//! `CircuitBreaker`: stops calling a provider that keeps failing, and fails fast with
//! [`ErrorKind::CircuitOpen`] instead, until a single probe shows it is back.
//!
//! One circuit per provider (or per `provider/model` with [`BreakerConfig::per_model`]):
//!
//! - **closed**: calls pass; `failure_threshold` consecutive counted failures (or, when
//!   configured, a failure rate over the last calls) open it;
//! - **open**: calls fail at once with `CircuitOpen` (provider set, `retry_after` = the time
//!   until a probe is allowed) without touching the provider;
//! - **half-open**: after `cool_down`, one call goes through as a probe, under
//!   `probe_timeout`; its success closes the circuit, its failure opens it again. Calls that
//!   arrive while the probe is out fail fast.
//!
//! Counted failures are the provider's trouble, not the caller's: 5xx and 529
//! ([`ErrorKind::Unavailable`]), timeouts, transport failures and truncated streams. No 4xx
//! counts — a 429 says the provider is up and busy, a 400 that the request was wrong — and
//! such answers leave the count alone (in a probe, they show the provider is back).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use exllm_core::{
    ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, Middleware, Next, Result,
};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::retry::{First, failed, first_event, prepend};

/// When [`CircuitBreaker`] opens and how it recovers.
///
/// ```
/// use std::time::Duration;
/// use exllm_infrastructure::breaker::{BreakerConfig, CircuitBreaker, FailureRate};
///
/// let breaker = CircuitBreaker::new(BreakerConfig {
///     failure_threshold: 3,
///     failure_rate: Some(FailureRate::default()),
///     cool_down: Duration::from_secs(10),
///     ..BreakerConfig::default()
/// });
/// # let _ = breaker;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive counted failures that open a closed circuit.
    pub failure_threshold: u32,
    /// Also open when this share of the last calls failed; `None` counts only consecutive
    /// failures.
    pub failure_rate: Option<FailureRate>,
    /// How long an open circuit fails fast before letting a probe through.
    pub cool_down: Duration,
    /// The deadline on a probe (for a stream: until its first event).
    pub probe_timeout: Duration,
    /// One circuit per `provider/model` rather than per provider.
    pub per_model: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_rate: None,
            cool_down: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(30),
            per_model: false,
        }
    }
}

/// A failure-rate trigger: open when at least `percent` % of the last `window` calls failed,
/// once the window holds `min_calls` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRate {
    /// How many recent calls are judged.
    pub window: u32,
    /// Fewer calls than this never open the circuit.
    pub min_calls: u32,
    /// The failure share, in percent, that opens it.
    pub percent: u8,
}

impl Default for FailureRate {
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 10,
            percent: 50,
        }
    }
}

/// A circuit's state, as metrics and health checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast; a probe is allowed after `retry_after`.
    Open {
        /// The time left until a probe is allowed.
        retry_after: Duration,
    },
    /// The cool-down is over: the next call is a probe (or one is out).
    HalfOpen,
}

/// The circuit-breaker middleware. Clones share the circuits.
#[derive(Debug, Clone, Default)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    circuits: Arc<Mutex<HashMap<String, Circuit>>>,
}

impl CircuitBreaker {
    /// A breaker configured by `config`.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            circuits: Arc::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state of the circuit `key`: a provider name, or `provider/model` with
    /// [`BreakerConfig::per_model`]. A circuit never used is closed.
    pub fn state(&self, key: &str) -> BreakerState {
        let circuits = self.lock();
        circuits
            .get(key)
            .map_or(BreakerState::Closed, |c| c.state(Instant::now()))
    }

    /// Every circuit used so far and its state, by key.
    pub fn snapshot(&self) -> BTreeMap<String, BreakerState> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(key, circuit)| (key.clone(), circuit.state(now)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key(&self, provider: &str, model: &str) -> String {
        if self.config.per_model {
            format!("{provider}/{model}")
        } else {
            provider.to_owned()
        }
    }

    /// Lets a call through (as a plain call or the probe) or refuses it.
    fn admit(&self, key: &str, provider: &str) -> Result<Ticket> {
        let now = Instant::now();
        let mut circuits = self.lock();
        let circuit = circuits.entry(key.to_owned()).or_default();
        match circuit {
            Circuit::Closed { .. } => Ok(self.ticket(key, false)),
            Circuit::Open { until } if now >= *until => {
                *circuit = Circuit::HalfOpen {
                    probe_until: now.checked_add(self.config.probe_timeout).unwrap_or(now),
                };
                tracing::info!(circuit = key, "circuit half-open: sending a probe");
                Ok(self.ticket(key, true))
            }
            Circuit::Open { until } => Err(open_error(key, provider, *until - now)),
            Circuit::HalfOpen { probe_until } => Err(open_error(
                key,
                provider,
                probe_until.saturating_duration_since(now),
            )),
        }
    }

    fn ticket(&self, key: &str, probe: bool) -> Ticket {
        Ticket {
            breaker: self.clone(),
            key: key.to_owned(),
            probe,
            settled: false,
        }
    }

    /// Applies a call's verdict to circuit `key`.
    fn settle(&self, key: &str, probe: bool, verdict: Verdict) {
        let now = Instant::now();
        let mut circuits = self.lock();
        let circuit = circuits.entry(key.to_owned()).or_default();
        let reopen = now.checked_add(self.config.cool_down).unwrap_or(now);
        match circuit {
            Circuit::Closed {
                consecutive,
                recent,
            } => match verdict {
                Verdict::Success => {
                    *consecutive = 0;
                    push(recent, false, self.config.failure_rate);
                }
                Verdict::Failure => {
                    *consecutive = consecutive.saturating_add(1);
                    push(recent, true, self.config.failure_rate);
                    if *consecutive >= self.config.failure_threshold.max(1)
                        || rate_tripped(recent, self.config.failure_rate)
                    {
                        tracing::warn!(circuit = key, "circuit open after repeated failures");
                        *circuit = Circuit::Open { until: reopen };
                    }
                }
                Verdict::Neutral | Verdict::Abandoned => {}
            },
            Circuit::HalfOpen { .. } if probe => match verdict {
                Verdict::Success | Verdict::Neutral => {
                    tracing::info!(circuit = key, "circuit closed: the probe succeeded");
                    *circuit = Circuit::default();
                }
                Verdict::Failure => {
                    tracing::warn!(circuit = key, "circuit open again: the probe failed");
                    *circuit = Circuit::Open { until: reopen };
                }
                // Nothing learnt: let the next call probe at once.
                Verdict::Abandoned => *circuit = Circuit::Open { until: now },
            },
            // A call let through before the circuit opened, finishing late, changes nothing.
            Circuit::HalfOpen { .. } | Circuit::Open { .. } => {}
        }
    }
}

#[async_trait]
impl Middleware for CircuitBreaker {
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        let provider = next.provider().name();
        let key = self.key(provider, &request.model);
        let mut ticket = self.admit(&key, provider)?;
        let result = if ticket.probe {
            match tokio::time::timeout(self.config.probe_timeout, next.run(request)).await {
                Ok(result) => result,
                Err(_) => Err(probe_timeout_error(self.config.probe_timeout, provider)),
            }
        } else {
            next.run(request).await
        };
        ticket.settle(verdict(result.as_ref().err()));
        result
    }

    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        let provider = next.provider().name();
        let key = self.key(provider, &request.model);
        let mut ticket = self.admit(&key, provider)?;
        // The provider is judged by how the stream starts: its first event shows it is up.
        let start = async {
            match next.run_stream(request).await {
                Ok(stream) => Ok(first_event(stream).await),
                Err(err) => Err(err),
            }
        };
        let started = if ticket.probe {
            match tokio::time::timeout(self.config.probe_timeout, start).await {
                Ok(started) => started,
                Err(_) => Err(probe_timeout_error(self.config.probe_timeout, provider)),
            }
        } else {
            start.await
        };
        match started {
            Err(err) => {
                ticket.settle(verdict(Some(&err)));
                Err(err)
            }
            Ok(First::Failed(err)) => {
                ticket.settle(verdict(Some(&err)));
                Ok(failed(err))
            }
            Ok(First::Ended) => {
                ticket.settle(Verdict::Neutral);
                Ok(Box::pin(futures_util::stream::empty()))
            }
            Ok(First::Event(event, rest)) => {
                ticket.settle(Verdict::Success);
                // A later break still counts against the (now closed) circuit.
                let breaker = self.clone();
                let rest = rest.inspect(move |item| {
                    if let Err(err) = item
                        && counts_as_failure(err)
                    {
                        breaker.settle(&key, false, Verdict::Failure);
                    }
                });
                Ok(prepend(event, Box::pin(rest)))
            }
        }
    }
}

/// Whether `err` counts against a circuit: the provider's trouble (5xx, 529, timeouts,
/// transport failures, truncated streams), never a 4xx.
pub fn counts_as_failure(err: &Error) -> bool {
    if matches!(err.status(), Some(400..=499)) {
        return false;
    }
    matches!(
        err.kind(),
        ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::Transport
            | ErrorKind::StreamTruncated
    )
}

fn verdict(err: Option<&Error>) -> Verdict {
    match err {
        None => Verdict::Success,
        Some(err) if counts_as_failure(err) => Verdict::Failure,
        Some(_) => Verdict::Neutral,
    }
}

fn open_error(key: &str, provider: &str, wait: Duration) -> Error {
    Error::new(
        ErrorKind::CircuitOpen,
        format!(
            "the circuit for {key} is open after repeated failures; next try in {:.1} s",
            wait.as_secs_f64()
        ),
    )
    .with_provider(provider)
    .with_retry_after(wait)
}

fn probe_timeout_error(timeout: Duration, provider: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the circuit breaker's probe got no answer within {timeout:?}"),
    )
    .with_provider(provider)
}

/// How a call went, for the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Success,
    Failure,
    /// An answer that says nothing about the provider's health (a 4xx).
    Neutral,
    /// The call was dropped before it ended.
    Abandoned,
}

/// One circuit.
#[derive(Debug)]
enum Circuit {
    Closed {
        consecutive: u32,
        /// The last calls' outcomes (`true` = failed), for the failure rate.
        recent: VecDeque<bool>,
    },
    Open {
        until: Instant,
    },
    /// A probe is out until `probe_until` at the latest.
    HalfOpen {
        probe_until: Instant,
    },
}

impl Default for Circuit {
    fn default() -> Self {
        Self::Closed {
            consecutive: 0,
            recent: VecDeque::new(),
        }
    }
}

impl Circuit {
    fn state(&self, now: Instant) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { until } if now < *until => BreakerState::Open {
                retry_after: *until - now,
            },
            Self::Open { .. } | Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

fn push(recent: &mut VecDeque<bool>, failed: bool, rate: Option<FailureRate>) {
    let Some(rate) = rate else { return };
    recent.push_back(failed);
    while recent.len() > rate.window.max(1) as usize {
        recent.pop_front();
    }
}

fn rate_tripped(recent: &VecDeque<bool>, rate: Option<FailureRate>) -> bool {
    let Some(rate) = rate else { return false };
    let calls = recent.len();
    if calls == 0 || calls < rate.min_calls as usize {
        return false;
    }
    let failures = recent.iter().filter(|f| **f).count();
    failures * 100 >= calls * usize::from(rate.percent)
}

/// A call let through: it must report how it went. Dropped unreported (the caller gave up
/// on it), a probe frees the half-open slot so that the next call can probe.
struct Ticket {
    breaker: CircuitBreaker,
    key: String,
    probe: bool,
    settled: bool,
}

impl Ticket {
    fn settle(&mut self, verdict: Verdict) {
        self.settled = true;
        self.breaker.settle(&self.key, self.probe, verdict);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker
                .settle(&self.key, self.probe, Verdict::Abandoned);
        }
    }
}
