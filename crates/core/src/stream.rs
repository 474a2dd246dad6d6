//! Stream events, and the accumulator every adapter uses to turn deltas into a complete response.

use std::collections::BTreeMap;
use std::pin::Pin;

use futures_core::Stream;
use futures_util::StreamExt;

use crate::chat::{ChatResponse, ContentPart, FinishReason, Reasoning, ToolCall};
use crate::error::{Error, ErrorKind, Result};
use crate::usage::Usage;

/// A streamed reply: events in order, ending with [`StreamEvent::Done`] or an error.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send + 'static>>;

/// One event of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// More reply text.
    TextDelta(String),
    /// More reasoning ("thinking") text.
    ReasoningDelta(String),
    /// The signature of the current reasoning block, as the provider sent it (Anthropic's
    /// `signature_delta`, Gemini's `thoughtSignature` on a thought). It comes after the block's
    /// reasoning text and before anything that follows the block, and it ends the block:
    /// reasoning after it (text or another signature) belongs to a new block, as
    /// [`StreamAccumulator`] assembles it.
    ReasoningSignature(String),
    /// A whole redacted reasoning block: the provider's opaque, encrypted data, to be sent back
    /// unchanged in later turns (Anthropic's `redacted_thinking`).
    RedactedReasoning(String),
    /// More refusal text.
    RefusalDelta(String),
    /// A tool call begins.
    ToolCallStart {
        /// The call's position in the reply (providers' `index`).
        index: usize,
        /// The call id.
        id: String,
        /// The tool name.
        name: String,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolCallDelta {
        /// The call's position.
        index: usize,
        /// The fragment, to be concatenated with the others of the same index.
        arguments: String,
    },
    /// A tool call is complete, arguments assembled and parsed.
    ToolCallEnd {
        /// The call's position.
        index: usize,
        /// The complete call.
        call: ToolCall,
    },
    /// Usage so far (providers report it once or cumulatively).
    Usage(Usage),
    /// The end: the complete response, with usage and cost.
    Done(Box<ChatResponse>),
}

struct PendingCall {
    /// Position of the call's part in `response.content`.
    slot: usize,
    arguments: String,
    ended: bool,
}

/// Assembles stream deltas into a [`ChatResponse`] while producing the events to hand on.
///
/// Adapters call one method per thing the provider sent; each returns the event(s) to emit.
/// Tool-call arguments are assembled per index, so parallel calls whose fragments interleave
/// are kept apart.
#[derive(Default)]
pub struct StreamAccumulator {
    response: Option<ChatResponse>,
    calls: BTreeMap<usize, PendingCall>,
    finished: bool,
    usage_seen: bool,
}

impl std::fmt::Debug for StreamAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamAccumulator")
            .field("response", &self.response)
            .field("open_calls", &self.calls.len())
            .field("finished", &self.finished)
            .finish()
    }
}

impl StreamAccumulator {
    /// An accumulator for a reply from `provider` for `model`.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            response: Some(ChatResponse::new(provider, model)),
            calls: BTreeMap::new(),
            finished: false,
            usage_seen: false,
        }
    }

    fn resp(&mut self) -> &mut ChatResponse {
        self.response
            .get_or_insert_with(|| ChatResponse::new("", ""))
    }

    /// The response being assembled (for the id, model and metadata).
    pub fn response_mut(&mut self) -> &mut ChatResponse {
        self.resp()
    }

    /// Appends reply text.
    pub fn text(&mut self, delta: &str) -> StreamEvent {
        let content = &mut self.resp().content;
        match content.last_mut() {
            Some(ContentPart::Text { text }) => text.push_str(delta),
            _ => content.push(ContentPart::text(delta)),
        }
        StreamEvent::TextDelta(delta.to_owned())
    }

    /// Appends refusal text.
    pub fn refusal(&mut self, delta: &str) -> StreamEvent {
        let content = &mut self.resp().content;
        match content.last_mut() {
            Some(ContentPart::Refusal { text }) => text.push_str(delta),
            _ => content.push(ContentPart::Refusal {
                text: delta.to_owned(),
            }),
        }
        StreamEvent::RefusalDelta(delta.to_owned())
    }

    fn open_reasoning(&mut self) -> &mut Reasoning {
        let content = &mut self.resp().content;
        let reuse = matches!(content.last(), Some(ContentPart::Reasoning(r)) if r.signature.is_none() && r.redacted.is_none());
        if !reuse {
            content.push(ContentPart::Reasoning(Reasoning::default()));
        }
        match content.last_mut() {
            Some(ContentPart::Reasoning(r)) => r,
            _ => unreachable!("a reasoning part was just ensured"),
        }
    }

    /// Appends reasoning text.
    pub fn reasoning(&mut self, delta: &str) -> StreamEvent {
        self.open_reasoning().text.push_str(delta);
        StreamEvent::ReasoningDelta(delta.to_owned())
    }

    /// Appends to the signature of the current reasoning block (opening one when the last
    /// part is not an unsigned reasoning block) and returns the
    /// [`StreamEvent::ReasoningSignature`] to emit.
    pub fn reasoning_signature(&mut self, signature: &str) -> StreamEvent {
        let r = self.open_reasoning();
        r.signature
            .get_or_insert_with(String::new)
            .push_str(signature);
        StreamEvent::ReasoningSignature(signature.to_owned())
    }

    /// Adds a redacted reasoning block and returns the [`StreamEvent::RedactedReasoning`] to
    /// emit.
    pub fn redacted_reasoning(&mut self, data: &str) -> StreamEvent {
        self.resp().content.push(ContentPart::Reasoning(Reasoning {
            text: String::new(),
            signature: None,
            redacted: Some(data.to_owned()),
        }));
        StreamEvent::RedactedReasoning(data.to_owned())
    }

    /// Starts tool call `index`. A second start for an open index is treated as more arguments'
    /// metadata and ignored.
    pub fn tool_call_start(&mut self, index: usize, id: &str, name: &str) -> StreamEvent {
        if !self.calls.contains_key(&index) {
            let content = &mut self.resp().content;
            content.push(ContentPart::ToolCall(ToolCall::new(
                id,
                name,
                serde_json::Value::Null,
            )));
            let slot = content.len() - 1;
            self.calls.insert(
                index,
                PendingCall {
                    slot,
                    arguments: String::new(),
                    ended: false,
                },
            );
        }
        StreamEvent::ToolCallStart {
            index,
            id: id.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Appends an argument fragment to tool call `index`. A fragment for an index that never
    /// started opens a call with an empty id and name rather than being dropped.
    pub fn tool_call_delta(&mut self, index: usize, fragment: &str) -> StreamEvent {
        if !self.calls.contains_key(&index) {
            self.tool_call_start(index, "", "");
        }
        if let Some(call) = self.calls.get_mut(&index) {
            call.arguments.push_str(fragment);
        }
        StreamEvent::ToolCallDelta {
            index,
            arguments: fragment.to_owned(),
        }
    }

    /// Attaches a provider signature to tool call `index` (Gemini's `thoughtSignature`).
    pub fn tool_call_signature(&mut self, index: usize, signature: &str) {
        if let Some(slot) = self.calls.get(&index).map(|c| c.slot)
            && let Some(ContentPart::ToolCall(call)) = self.resp().content.get_mut(slot)
        {
            call.signature = Some(signature.to_owned());
        }
    }

    /// Completes tool call `index`: parses its arguments and returns the end event.
    pub fn tool_call_end(&mut self, index: usize) -> Option<StreamEvent> {
        let (slot, raw) = {
            let call = self.calls.get_mut(&index)?;
            if call.ended {
                return None;
            }
            call.ended = true;
            (call.slot, std::mem::take(&mut call.arguments))
        };
        let content = &mut self.resp().content;
        let Some(ContentPart::ToolCall(call)) = content.get_mut(slot) else {
            return None;
        };
        call.arguments = ToolCall::parse_arguments(&raw);
        Some(StreamEvent::ToolCallEnd {
            index,
            call: call.clone(),
        })
    }

    /// Completes every open tool call, in index order.
    pub fn end_tool_calls(&mut self) -> Vec<StreamEvent> {
        let open: Vec<usize> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.ended)
            .map(|(i, _)| *i)
            .collect();
        open.into_iter()
            .filter_map(|i| self.tool_call_end(i))
            .collect()
    }

    /// Records usage (replacing earlier figures: providers report cumulative counts).
    pub fn usage(&mut self, usage: Usage) -> StreamEvent {
        self.usage_seen = true;
        self.resp().usage = usage;
        StreamEvent::Usage(usage)
    }

    /// Whether usage was reported.
    pub fn has_usage(&self) -> bool {
        self.usage_seen
    }

    /// Records why the model stopped; the stream is complete once this is set.
    pub fn finish_reason(&mut self, reason: Option<FinishReason>, raw: Option<&str>) {
        self.finished = true;
        let resp = self.resp();
        resp.finish_reason = reason;
        resp.provider_finish_reason = raw.map(str::to_owned);
    }

    /// Whether the provider said the reply is complete.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What was assembled so far, open tool calls included with their arguments as received.
    pub fn partial(&self) -> ChatResponse {
        let mut resp = self
            .response
            .clone()
            .unwrap_or_else(|| ChatResponse::new("", ""));
        for call in self.calls.values().filter(|c| !c.ended) {
            if let Some(ContentPart::ToolCall(tc)) = resp.content.get_mut(call.slot) {
                tc.arguments = ToolCall::parse_arguments(&call.arguments);
            }
        }
        resp
    }

    /// A [`ErrorKind::StreamTruncated`] error carrying what was received.
    pub fn truncated(&self, message: impl Into<String>) -> Error {
        let partial = self.partial();
        Error::new(ErrorKind::StreamTruncated, message)
            .with_provider(partial.provider.clone())
            .with_partial(partial)
    }

    /// Attaches what was received to another error (a mid-stream provider error).
    pub fn fail(&self, err: Error) -> Error {
        err.with_partial(self.partial())
    }

    /// The complete response. Open tool calls are completed first.
    pub fn finish(mut self) -> (Vec<StreamEvent>, ChatResponse) {
        let mut events = self.end_tool_calls();
        let mut resp = self
            .response
            .take()
            .unwrap_or_else(|| ChatResponse::new("", ""));
        if resp.finish_reason.is_none() && !resp.tool_calls().is_empty() {
            resp.finish_reason = Some(FinishReason::ToolCalls);
        }
        events.push(StreamEvent::Done(Box::new(resp.clone())));
        (events, resp)
    }
}

/// Consumes a stream and returns its final response (the one carried by `Done`).
///
/// An error event ends the stream with that error; a stream that ends without `Done` is a
/// [`ErrorKind::StreamTruncated`] error.
pub async fn collect(mut stream: ChatStream) -> Result<ChatResponse> {
    while let Some(event) = stream.next().await {
        if let StreamEvent::Done(resp) = event? {
            return Ok(*resp);
        }
    }
    Err(Error::new(
        ErrorKind::StreamTruncated,
        "the stream ended without a final response",
    ))
}

/// A complete response as the events a provider's stream of it would carry, rebuilt through
/// the accumulator every adapter uses: text word by word (the deltas concatenate to the text
/// exactly), reasoning with its signature, each tool call as start, arguments and end, usage,
/// then `Done`. Caches replay stored replies with it, and the mock provider its script.
pub fn replay(response: ChatResponse) -> Vec<StreamEvent> {
    let mut acc = StreamAccumulator::new(response.provider.clone(), response.model.clone());
    let mut events = Vec::new();
    let mut next_call = 0;
    for part in &response.content {
        match part {
            ContentPart::Text { text } => {
                // Word by word, spaces kept, so the deltas concatenate to the text exactly.
                events.extend(
                    text.split_inclusive(char::is_whitespace)
                        .map(|word| acc.text(word)),
                );
            }
            ContentPart::Refusal { text } => events.push(acc.refusal(text)),
            ContentPart::Reasoning(reasoning) => {
                if !reasoning.text.is_empty() {
                    events.push(acc.reasoning(&reasoning.text));
                }
                if let Some(signature) = &reasoning.signature {
                    events.push(acc.reasoning_signature(signature));
                }
                if let Some(data) = &reasoning.redacted {
                    events.push(acc.redacted_reasoning(data));
                }
            }
            ContentPart::ToolCall(call) => {
                let index = next_call;
                next_call += 1;
                events.push(acc.tool_call_start(index, &call.id, &call.name));
                let arguments = match &call.arguments {
                    serde_json::Value::String(raw) => raw.clone(),
                    other => other.to_string(),
                };
                events.push(acc.tool_call_delta(index, &arguments));
                if let Some(signature) = &call.signature {
                    acc.tool_call_signature(index, signature);
                }
                events.extend(acc.tool_call_end(index));
            }
            // Images and tool results never appear in a reply.
            ContentPart::Image { .. } | ContentPart::ToolResult(_) => {}
        }
    }
    events.push(acc.usage(response.usage));
    acc.finish_reason(
        response.finish_reason,
        response.provider_finish_reason.as_deref(),
    );
    let resp = acc.response_mut();
    resp.id = response.id;
    resp.metadata = response.metadata;
    resp.cost = response.cost;
    resp.attempts = response.attempts;
    events.extend(acc.finish().0);
    events
}
