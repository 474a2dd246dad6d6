//! The `mock` provider: scripted replies and recorded requests, for tests and demos.
//!
//! No network and no randomness: every reply is either scripted or derived from the request, so
//! a test that uses it is deterministic.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, ContentPart, Error, ErrorKind,
    FinishReason, Model, Pricing, Result, Role, StreamEvent, ToolCall, Usage,
};
use serde_json::Value;

/// The model the mock lists; any other model id is answered just the same.
pub const MOCK_MODEL: &str = "echo";

/// One scripted answer of a [`MockProvider`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MockReply {
    /// A complete response. Streamed, it is replayed as deltas (text split into words).
    Response(ChatResponse),
    /// The call fails with this error (before any stream starts).
    Error(Error),
    /// A stream's events, emitted verbatim, then `error` if there is one. Include a
    /// [`StreamEvent::Done`] yourself; leave it out to simulate a truncated stream. A plain
    /// `chat` call consumes the events and returns the `Done` response (or the error).
    Stream {
        /// The events, in order.
        events: Vec<StreamEvent>,
        /// An error that ends the stream after the events (a mid-stream failure).
        error: Option<Error>,
    },
}

/// A [`ChatProvider`] that answers from a script, then by echoing, and records every request.
///
/// Scripted replies are consumed in order, one per `chat` or `stream` call. When the script is
/// empty it answers `"mock reply: <last user message>"`, with usage counted as
/// whitespace-separated words (input: every message's text; output: the reply). It is free:
/// [`ChatProvider::pricing`] is zero.
///
/// ```
/// use exllm_adapters_providers::MockProvider;
/// use exllm_core::{ChatProvider, ChatRequest, Error, ErrorKind};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> exllm_core::Result<()> {
/// let mock = MockProvider::new()
///     .reply("hi")
///     .reply_tool_call("get_weather", json!({"city": "Paris"}))
///     .fail(Error::new(ErrorKind::RateLimited, "slow down"));
///
/// let first = mock.chat(ChatRequest::new("echo").user("hello")).await?;
/// assert_eq!(first.text(), "hi");
///
/// let second = mock.chat(ChatRequest::new("echo").user("weather?")).await?;
/// assert_eq!(second.tool_calls()[0].name, "get_weather");
///
/// let third = mock.chat(ChatRequest::new("echo").user("again")).await;
/// assert_eq!(third.unwrap_err().kind(), ErrorKind::RateLimited);
///
/// // The script is used up: the mock echoes.
/// let fourth = mock.chat(ChatRequest::new("echo").user("ping")).await?;
/// assert_eq!(fourth.text(), "mock reply: ping");
///
/// assert_eq!(mock.requests().len(), 4);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MockProvider {
    name: String,
    script: Mutex<VecDeque<MockReply>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl Default for MockProvider {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere in a test must not hide the script or the recorded requests.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MockProvider {
    /// A mock called `mock` with an empty script.
    pub fn new() -> Self {
        Self::named("mock")
    }

    /// A mock with another provider name (to stand in for `openai` in a test, say).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Scripts a text reply.
    pub fn reply(self, text: impl Into<String>) -> Self {
        let response = self.text_response(text.into());
        self.then(MockReply::Response(response))
    }

    /// Scripts a reply that calls tool `name` with `arguments`.
    pub fn reply_tool_call(self, name: impl Into<String>, arguments: Value) -> Self {
        self.reply_tool_calls(vec![(name.into(), arguments)])
    }

    /// Scripts a reply that calls several tools at once (parallel tool calls).
    pub fn reply_tool_calls(self, calls: Vec<(String, Value)>) -> Self {
        let mut response = self.base_response();
        let offset = lock(&self.script).len();
        for (i, (name, arguments)) in calls.into_iter().enumerate() {
            response.content.push(ContentPart::ToolCall(ToolCall::new(
                format!("call_mock_{offset}_{i}"),
                name,
                arguments,
            )));
        }
        response.finish_reason = Some(FinishReason::ToolCalls);
        response.provider_finish_reason = Some("tool_calls".to_owned());
        self.then(MockReply::Response(response))
    }

    /// Scripts a complete response, as is.
    pub fn reply_response(self, response: ChatResponse) -> Self {
        self.then(MockReply::Response(response))
    }

    /// Scripts a failure.
    pub fn fail(self, error: Error) -> Self {
        self.then(MockReply::Error(error))
    }

    /// Scripts a stream of exactly these events (see [`MockReply::Stream`]).
    pub fn reply_stream(self, events: Vec<StreamEvent>) -> Self {
        self.then(MockReply::Stream {
            events,
            error: None,
        })
    }

    /// Scripts a stream that emits `events` and then fails with `error`.
    pub fn reply_stream_then_fail(self, events: Vec<StreamEvent>, error: Error) -> Self {
        self.then(MockReply::Stream {
            events,
            error: Some(error),
        })
    }

    /// Appends a scripted reply (builder form).
    pub fn then(self, reply: MockReply) -> Self {
        self.push(reply);
        self
    }

    /// Appends a scripted reply to a mock already shared (e.g. behind an `Arc`).
    pub fn push(&self, reply: MockReply) {
        lock(&self.script).push_back(reply);
    }

    /// How many scripted replies are left.
    pub fn remaining(&self) -> usize {
        lock(&self.script).len()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.requests).clone()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<ChatRequest> {
        lock(&self.requests).last().cloned()
    }

    fn base_response(&self) -> ChatResponse {
        ChatResponse::new(self.name.clone(), MOCK_MODEL)
    }

    fn text_response(&self, text: String) -> ChatResponse {
        let mut response = self.base_response();
        response.content.push(ContentPart::text(text));
        response.finish_reason = Some(FinishReason::Stop);
        response.provider_finish_reason = Some("stop".to_owned());
        response
    }

    /// Records `request` and takes the next reply, filling in what the script left open.
    fn next(&self, request: ChatRequest) -> MockReply {
        let call = {
            let mut requests = lock(&self.requests);
            requests.push(request.clone());
            requests.len()
        };
        let reply = lock(&self.script)
            .pop_front()
            .unwrap_or_else(|| MockReply::Response(self.echo(&request)));
        match reply {
            MockReply::Response(mut response) => {
                if response.id.is_empty() {
                    response.id = format!("mock-{call}");
                }
                if !request.model.is_empty() && response.model == MOCK_MODEL {
                    response.model = request.model.clone();
                }
                if response.usage.is_empty() {
                    response.usage = Usage::new(
                        request.messages.iter().map(|m| words(&m.text())).sum(),
                        words(&response.text()),
                    );
                }
                MockReply::Response(response)
            }
            other => other,
        }
    }

    fn echo(&self, request: &ChatRequest) -> ChatResponse {
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text())
            .unwrap_or_default();
        self.text_response(format!("mock reply: {last_user}"))
    }
}

fn words(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

#[async_trait]
impl ChatProvider for MockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        match self.next(request) {
            MockReply::Response(response) => Ok(response),
            MockReply::Error(error) => Err(error.or_provider(&self.name)),
            MockReply::Stream { events, error } => {
                for event in events {
                    if let StreamEvent::Done(response) = event {
                        return Ok(*response);
                    }
                }
                Err(error.unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::StreamTruncated,
                        "the scripted stream has no Done event",
                    )
                    .with_provider(self.name.clone())
                }))
            }
        }
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let items: Vec<Result<StreamEvent>> = match self.next(request) {
            MockReply::Response(response) => exllm_core::stream::replay(response)
                .into_iter()
                .map(Ok)
                .collect(),
            MockReply::Error(error) => return Err(error.or_provider(&self.name)),
            MockReply::Stream { events, error } => {
                let name = self.name.clone();
                events
                    .into_iter()
                    .map(Ok)
                    .chain(error.map(|e| Err(e.or_provider(&name))))
                    .collect()
            }
        };
        Ok(Box::pin(futures_util::stream::iter(items)))
    }

    async fn list_models(&self) -> Result<Vec<Model>> {
        let mut model = Model::named(self.name.clone(), MOCK_MODEL);
        model.pricing = Some(Pricing::default());
        model.capabilities.tools = true;
        Ok(vec![model])
    }

    fn pricing(&self, _model: &str) -> Option<Pricing> {
        Some(Pricing::default())
    }
}

#[cfg(test)]
mod tests;
