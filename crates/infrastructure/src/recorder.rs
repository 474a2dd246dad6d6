//! `UsageRecorder`: the innermost middleware, writing every attempt exactly once to the usage
//! ledger — tokens, cost, latency, outcome, attempt number, caller and conversation.
//!
//! It sits right above the provider (see the pipeline order in [`crate::retry`]), so it sees
//! each attempt a retry or a fallback makes, already priced by the facade. A plain call is
//! recorded when it returns; a stream when it ends: `Done` → [`Outcome::Ok`] with the final
//! usage, an error → [`Outcome::Error`] with the partial usage the error carries, and a stream
//! the consumer drops early (or a call a deadline cancels) → `Error(Cancelled)` with the usage
//! seen so far.
//!
//! A ledger that fails to write never fails the call: the failure is logged and the reply
//! goes on.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use exllm_core::{
    CallerKey, ChatRequest, ChatResponse, ChatStream, ConversationRef, Cost, Error, ErrorKind,
    Middleware, Next, Outcome, Result, StreamEvent, Usage, UsageLedger, UsageRecord,
};
use futures_util::StreamExt;
use tokio::time::Instant;

/// The attempt number of a call (1 for the first try, 2 for the first retry, …), set on the
/// request's extensions by [`crate::retry::Retry`] before each try and read by the recorder.
/// A request without it is attempt 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt(pub u32);

/// Records every attempt into a [`UsageLedger`]. Put it last (innermost) in the pipeline.
///
/// ```
/// # use std::sync::Arc;
/// # use exllm_core::{ExLLM, UsageLedger};
/// use exllm_infrastructure::recorder::UsageRecorder;
/// # fn demo(ledger: Arc<dyn UsageLedger>) -> ExLLM {
/// let exllm = ExLLM::builder()
///     // … the other middleware first (outermost) …
///     .middleware(Arc::new(UsageRecorder::new(ledger)))
///     .build();
/// # exllm }
/// ```
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    ledger: Arc<dyn UsageLedger>,
}

/// A telemetry hook: called with every attempt's record, whatever the ledger does with it
/// (metrics, logs, your own accounting).
pub type UsageHook = Arc<dyn Fn(&UsageRecord) + Send + Sync>;

impl UsageRecorder {
    /// A recorder writing to `ledger`.
    pub fn new(ledger: Arc<dyn UsageLedger>) -> Self {
        Self { ledger }
    }

    /// A recorder that only calls `hook` (no ledger).
    pub fn hook_only(hook: UsageHook) -> Self {
        Self::new(Arc::new(Observed { inner: None, hook }))
    }

    /// Also calls `hook` with every record, before the ledger writes it.
    pub fn with_hook(self, hook: UsageHook) -> Self {
        Self::new(Arc::new(Observed {
            inner: Some(self.ledger),
            hook,
        }))
    }
}

/// A ledger that shows each record to a hook, then passes it on.
struct Observed {
    inner: Option<Arc<dyn UsageLedger>>,
    hook: UsageHook,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl UsageLedger for Observed {
    async fn record(&self, record: UsageRecord) -> Result<()> {
        (self.hook)(&record);
        match &self.inner {
            Some(inner) => inner.record(record).await,
            None => Ok(()),
        }
    }

    async fn totals(&self, query: &exllm_core::UsageQuery) -> Result<Vec<exllm_core::UsageTotal>> {
        match &self.inner {
            Some(inner) => inner.totals(query).await,
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl Middleware for UsageRecorder {
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        let mut pending = Pending::start(&self.ledger, &request, next.provider().name(), false);
        let result = next.run(request).await;
        let (outcome, usage, cost) = match &result {
            Ok(response) => (Outcome::Ok, response.usage, response.cost),
            Err(err) => error_usage(err),
        };
        pending.finish(outcome, usage, cost).await;
        result
    }

    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        let mut pending = Pending::start(&self.ledger, &request, next.provider().name(), true);
        let stream = match next.run_stream(request).await {
            Ok(stream) => stream,
            Err(err) => {
                let (outcome, usage, cost) = error_usage(&err);
                pending.finish(outcome, usage, cost).await;
                return Err(err);
            }
        };
        Ok(Box::pin(futures_util::stream::unfold(
            Some((stream, pending)),
            |state| async move {
                let (mut stream, mut pending) = state?;
                match stream.next().await {
                    Some(Ok(StreamEvent::Done(response))) => {
                        pending
                            .finish(Outcome::Ok, response.usage, response.cost)
                            .await;
                        Some((Ok(StreamEvent::Done(response)), None))
                    }
                    Some(Ok(event)) => {
                        if let StreamEvent::Usage(usage) = &event {
                            pending.seen = *usage;
                        }
                        Some((Ok(event), Some((stream, pending))))
                    }
                    Some(Err(err)) => {
                        let (outcome, mut usage, cost) = error_usage(&err);
                        if usage == Usage::default() {
                            usage = pending.seen;
                        }
                        pending.finish(outcome, usage, cost).await;
                        Some((Err(err), None))
                    }
                    None => {
                        // The facade's innermost step always ends a stream with `Done` or an
                        // error; a bare end means a truncated reply, not a success.
                        let usage = pending.seen;
                        pending
                            .finish(Outcome::Error(ErrorKind::StreamTruncated), usage, None)
                            .await;
                        None
                    }
                }
            },
        )))
    }
}

/// The outcome, usage and cost of a failed attempt: the partial response's, when the error
/// carries one.
fn error_usage(err: &Error) -> (Outcome, Usage, Option<Cost>) {
    let (usage, cost) = err
        .partial_response()
        .map(|partial| (partial.usage, partial.cost))
        .unwrap_or_default();
    (Outcome::Error(err.kind()), usage, cost)
}

/// An attempt under way: the record's fixed fields, the usage seen so far, and whether it
/// has been written. Dropped unwritten (the consumer dropped the stream, or a deadline
/// dropped the call), it writes a `Cancelled` record in a spawned task.
struct Pending {
    ledger: Arc<dyn UsageLedger>,
    record: Option<UsageRecord>,
    started: Instant,
    seen: Usage,
}

impl Pending {
    fn start(
        ledger: &Arc<dyn UsageLedger>,
        request: &ChatRequest,
        provider: &str,
        stream: bool,
    ) -> Self {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut record = UsageRecord::new(at_ms, provider, request.model.clone());
        record.attempt = request
            .extensions
            .get::<Attempt>()
            .map_or(1, |attempt| attempt.0);
        record.caller = request
            .extensions
            .get::<CallerKey>()
            .map(|key| key.0.clone());
        record.conversation_id = request
            .extensions
            .get::<ConversationRef>()
            .map(|conversation| conversation.0.clone());
        record.stream = stream;
        Self {
            ledger: Arc::clone(ledger),
            record: Some(record),
            started: Instant::now(),
            seen: Usage::default(),
        }
    }

    /// The record, completed; `None` once it was taken.
    fn complete(
        &mut self,
        outcome: Outcome,
        usage: Usage,
        cost: Option<Cost>,
    ) -> Option<UsageRecord> {
        let mut record = self.record.take()?;
        record.outcome = outcome;
        record.usage = usage;
        record.cost = cost;
        record.latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(record)
    }

    async fn finish(&mut self, outcome: Outcome, usage: Usage, cost: Option<Cost>) {
        if let Some(record) = self.complete(outcome, usage, cost) {
            write(self.ledger.as_ref(), record).await;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let usage = std::mem::take(&mut self.seen);
        let Some(record) = self.complete(Outcome::Error(ErrorKind::Cancelled), usage, None) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let ledger = Arc::clone(&self.ledger);
                runtime.spawn(async move { write(ledger.as_ref(), record).await });
            }
            Err(_) => tracing::warn!(
                provider = %record.provider,
                model = %record.model,
                "a cancelled call could not be recorded: no async runtime to write the record on"
            ),
        }
    }
}

/// Writes `record`, logging (never propagating) a ledger failure: the reply matters more.
async fn write(ledger: &dyn UsageLedger, record: UsageRecord) {
    if let Err(err) = ledger.record(record).await {
        tracing::warn!(error = %err, "the usage ledger could not record an attempt");
    }
}
