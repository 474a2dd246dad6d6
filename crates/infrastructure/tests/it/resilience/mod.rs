//! The resilience middleware — retry, timeout, circuit breaker, fallback, usage recorder —
//! against the fixture server over real TCP, through the real OpenAI adapter and the facade.
//!
//! Time is paused (`start_paused`): tokio moves the clock forward whenever the runtime is idle,
//! so backoffs and retry-afters take no wall time and elapsed times are exact.

mod breaker;
mod fallback;
mod retry;
mod stream;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use exllm_adapters_providers::{OpenAiConfig, OpenAiProvider};
use exllm_core::{
    ChatProvider, ChatStream, Error, ErrorKind, Middleware, Outcome, Result, Secret, StreamEvent,
    UsageLedger, UsageQuery, UsageRecord, UsageTotal,
};
use exllm_infrastructure::testing::FixtureServer;
use exllm_infrastructure::{HttpConfig, HttpExecutor};
use futures_util::StreamExt;

/// A ledger that keeps every record in memory, in arrival order.
#[derive(Debug, Default)]
pub struct VecLedger(Mutex<Vec<UsageRecord>>);

#[async_trait]
impl UsageLedger for VecLedger {
    async fn record(&self, record: UsageRecord) -> Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
        Ok(())
    }

    async fn totals(&self, _query: &UsageQuery) -> Result<Vec<UsageTotal>> {
        Ok(Vec::new())
    }
}

impl VecLedger {
    pub fn records(&self) -> Vec<UsageRecord> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The records once there are `n` (records of dropped calls are written by a spawned
    /// task, so they may need a few turns of the runtime).
    pub async fn wait_for(&self, n: usize) -> Vec<UsageRecord> {
        for _ in 0..1000 {
            if self.records().len() >= n {
                break;
            }
            tokio::task::yield_now().await;
        }
        self.records()
    }

    /// `(provider, attempt, outcome)` of every record, in order.
    pub fn summary(&self) -> Vec<(String, u32, Outcome)> {
        self.records()
            .into_iter()
            .map(|r| (r.provider, r.attempt, r.outcome))
            .collect()
    }
}

/// An OpenAI provider called `name` talking to `server`.
pub fn openai_at(name: &str, server: &FixtureServer) -> Arc<dyn ChatProvider> {
    let executor = HttpExecutor::new(HttpConfig {
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(5),
        max_line_bytes: 64 * 1024,
        max_body_bytes: 1024 * 1024,
    })
    .expect("an HTTP executor");
    let config = OpenAiConfig::compatible(
        name,
        format!("{}/v1", server.url()),
        Some(Secret::new("sk-test-key")),
    );
    Arc::new(OpenAiProvider::new(config, executor))
}

/// An `ExLLM` with one provider and `middleware`, the first outermost.
pub fn client(
    providers: Vec<Arc<dyn ChatProvider>>,
    middleware: Vec<Arc<dyn Middleware>>,
) -> exllm_core::ExLLM {
    let builder = providers
        .into_iter()
        .fold(exllm_core::ExLLM::builder(), |b, p| b.provider(p));
    middleware
        .into_iter()
        .fold(builder, |b, m| b.middleware(m))
        .build()
}

/// A successful OpenAI chat completion.
pub fn completion(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    })
    .to_string()
}

/// An OpenAI error body.
pub fn error_body(kind: &str, code: &str) -> String {
    serde_json::json!({"error": {"message": format!("{kind} happened"), "type": kind, "param": null, "code": code}})
        .to_string()
}

/// The SSE frames of a streamed reply saying `words`, with a usage chunk and `[DONE]`.
pub fn sse_frames(words: &[&str]) -> Vec<String> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        format!(
            "data: {}\n\n",
            serde_json::json!({
                "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
            })
        )
    };
    let mut frames = vec![chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        serde_json::Value::Null,
    )];
    for word in words {
        frames.push(chunk(
            serde_json::json!({"content": word}),
            serde_json::Value::Null,
        ));
    }
    frames.push(chunk(serde_json::json!({}), serde_json::json!("stop")));
    frames.push(format!(
        "data: {}\n\n",
        serde_json::json!({
            "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        })
    ));
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

/// Reads a stream call to its end: the events, and the error that ended it (from the call or
/// as an item), asserting that nothing follows an error.
pub async fn drain(call: Result<ChatStream>) -> (Vec<StreamEvent>, Option<Error>) {
    let mut stream = match call {
        Ok(stream) => stream,
        Err(err) => return (Vec::new(), Some(err)),
    };
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(err) => {
                assert!(stream.next().await.is_none(), "nothing may follow an error");
                return (events, Some(err));
            }
        }
    }
    (events, None)
}

/// The `Done` response of `events`.
pub fn done(events: &[StreamEvent]) -> &exllm_core::ChatResponse {
    match events.last() {
        Some(StreamEvent::Done(response)) => response,
        other => panic!("the stream must end with Done, got {other:?}"),
    }
}

pub fn err_outcome(kind: ErrorKind) -> Outcome {
    Outcome::Error(kind)
}
