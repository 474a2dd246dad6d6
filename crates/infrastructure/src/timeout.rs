//! `Timeout`: a total deadline per call (retries and fallbacks included when it is outermost)
//! and, for streams, an idle deadline between events; either ends the call with
//! [`ErrorKind::Timeout`].
//!
//! The HTTP executor has its own deadlines per request; these are per call and configurable
//! per client, so a caller can say "an answer within 30 s, whatever it takes".

use std::time::Duration;

use async_trait::async_trait;
use exllm_core::{
    ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, Middleware, Next, Result, StreamEvent,
};
use futures_util::StreamExt;
use tokio::time::Instant;

/// The deadlines [`Timeout`] enforces.
///
/// ```
/// use std::time::Duration;
/// use exllm_infrastructure::timeout::{Timeout, TimeoutConfig};
///
/// let timeout = Timeout::new(TimeoutConfig {
///     total: Some(Duration::from_secs(30)),
///     idle: Some(Duration::from_secs(10)),
/// });
/// # let _ = timeout;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// The whole call, to the last stream event; `None` for no limit. The default, 10 minutes,
    /// is the official OpenAI SDK's.
    pub total: Option<Duration>,
    /// The longest silence between two stream events (and before the first); `None` leaves
    /// it to the HTTP executor's idle timeout.
    pub idle: Option<Duration>,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            total: Some(Duration::from_secs(600)),
            idle: None,
        }
    }
}

/// The timeout middleware. Put it outermost so that its deadline covers retries too.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeout {
    config: TimeoutConfig,
}

impl Timeout {
    /// A timeout middleware with `config`'s deadlines.
    pub fn new(config: TimeoutConfig) -> Self {
        Self { config }
    }

    /// The deadlines in force.
    pub fn config(&self) -> &TimeoutConfig {
        &self.config
    }
}

#[async_trait]
impl Middleware for Timeout {
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        let Some(total) = self.config.total else {
            return next.run(request).await;
        };
        let provider = next.provider().name().to_owned();
        tokio::time::timeout(total, next.run(request))
            .await
            .unwrap_or_else(|_| Err(total_error(total, &provider)))
    }

    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        let started = Instant::now();
        let total = self.config.total;
        let idle = self.config.idle;
        let provider = next.provider().name().to_owned();
        // Opening the stream counts against both deadlines: it ends when the response head
        // (or, with retries below, the first event) is in.
        let opening = next.run_stream(request);
        let stream = match deadline(started, total, idle, started) {
            Some((at, which)) => match tokio::time::timeout_at(at, opening).await {
                Ok(result) => result?,
                Err(_) => return Err(which.error(&provider)),
            },
            None => opening.await?,
        };
        if total.is_none() && idle.is_none() {
            return Ok(stream);
        }
        let state = Some((stream, Instant::now()));
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            move |state| {
                let provider = provider.clone();
                async move {
                    let (mut stream, last) = state?;
                    let Some((at, which)) = deadline(started, total, idle, last) else {
                        let item = stream.next().await?;
                        return Some((item, Some((stream, Instant::now()))));
                    };
                    match tokio::time::timeout_at(at, stream.next()).await {
                        Ok(Some(Ok(event))) => {
                            let done = matches!(event, StreamEvent::Done(_));
                            let state = (!done).then(|| (stream, Instant::now()));
                            Some((Ok(event), state))
                        }
                        // Nothing follows an error.
                        Ok(Some(Err(err))) => Some((Err(err), None)),
                        Ok(None) => None,
                        // Dropping the inner stream here cancels the provider call.
                        Err(_) => Some((Err(which.error(&provider)), None)),
                    }
                }
            },
        )))
    }
}

/// Which deadline comes first.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    Total(Duration),
    Idle(Duration),
}

impl Deadline {
    fn error(self, provider: &str) -> Error {
        match self {
            Self::Total(total) => total_error(total, provider),
            Self::Idle(idle) => Error::new(
                ErrorKind::Timeout,
                format!("no stream event for {idle:?} (idle timeout)"),
            )
            .with_provider(provider),
        }
    }
}

fn total_error(total: Duration, provider: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("no complete reply within {total:?} (total timeout)"),
    )
    .with_provider(provider)
}

/// The earlier of the total deadline (from `started`) and the idle deadline (from `last`).
fn deadline(
    started: Instant,
    total: Option<Duration>,
    idle: Option<Duration>,
    last: Instant,
) -> Option<(Instant, Deadline)> {
    // A deadline too far away to represent is no deadline (`Instant + Duration` would panic).
    let total = total.and_then(|t| Some((started.checked_add(t)?, Deadline::Total(t))));
    let idle = idle.and_then(|i| Some((last.checked_add(i)?, Deadline::Idle(i))));
    match (total, idle) {
        (Some(t), Some(i)) => Some(if i.0 < t.0 { i } else { t }),
        (t, i) => t.or(i),
    }
}
