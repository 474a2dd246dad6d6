//! The conversation use case: create, send (plain and streamed), get, list, delete, export and
//! import, over the client's [`ConversationStore`].

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::chat::{ChatRequest, ChatResponse, ContentPart, Message, Role};
use crate::conversation::Conversation;
use crate::error::{Error, ErrorKind, Result};
use crate::extensions::ConversationRef;
use crate::facade::{ChatInput, ExLLM};
use crate::ports::{ConversationFilter, ConversationStore};
use crate::stream::{ChatStream, StreamEvent};

/// The version of the export format written by [`Conversations::export`].
pub const EXPORT_FORMAT: &str = "exllm.conversation.v1";

/// Conversations kept in the client's [`ConversationStore`].
#[derive(Debug, Clone, Copy)]
pub struct Conversations<'a> {
    pub(crate) exllm: &'a ExLLM,
}

impl Conversations<'_> {
    fn store(&self) -> Result<&Arc<dyn ConversationStore>> {
        self.exllm.store().ok_or_else(|| {
            Error::config(
                "no conversation store configured: add one with ExLLMBuilder::store \
                 (e.g. exllm::persistence::InMemoryStore)",
            )
        })
    }

    /// Starts a conversation with the model at `address`, optionally with a system prompt.
    /// Returns the new conversation (its id assigned by the store).
    // `conversations().new(…)` reads as the domain says it; it creates a stored conversation,
    // not a `Conversations` handle.
    #[allow(clippy::new_ret_no_self)]
    pub async fn new(&self, address: &str, system: Option<&str>) -> Result<Conversation> {
        self.create(address, system, Map::new()).await
    }

    /// [`Conversations::new`] with metadata kept alongside the conversation.
    pub async fn create(
        &self,
        address: &str,
        system: Option<&str>,
        metadata: Map<String, Value>,
    ) -> Result<Conversation> {
        let target = self.exllm.resolve(address)?;
        self.exllm.provider(&target.provider)?;
        let mut conversation = Conversation::new("", target.provider, target.model);
        conversation.metadata = metadata;
        if let Some(system) = system {
            conversation.messages.push(Message::system(system));
        }
        let id = self.store()?.create(conversation).await?;
        self.get(&id).await
    }

    /// The conversation `id`.
    pub async fn get(&self, id: &str) -> Result<Conversation> {
        self.store()?.get(id).await?.ok_or_else(|| not_found(id))
    }

    /// Conversations matching `filter`, newest first.
    pub async fn list(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>> {
        self.store()?.list(filter).await
    }

    /// Deletes conversation `id`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        if self.store()?.delete(id).await? {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// The conversation `id` as a self-describing JSON document for [`Conversations::import`].
    pub async fn export(&self, id: &str) -> Result<Value> {
        let conversation = self.get(id).await?;
        let mut doc = serde_json::to_value(&conversation)?;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("format".into(), Value::String(EXPORT_FORMAT.into()));
        }
        Ok(doc)
    }

    /// Stores an exported conversation, keeping its id unless a conversation with that id
    /// already exists (then it gets a fresh one). The document is checked completely before
    /// anything is written.
    pub async fn import(&self, doc: &Value) -> Result<Conversation> {
        let conversation = parse_export(doc)?;
        let store = self.store()?;
        let mut fresh = conversation.clone();
        if store.get(&fresh.id).await?.is_some() {
            fresh.id.clear();
        }
        let id = store.create(fresh).await?;
        self.get(&id).await
    }

    /// Sends `input` as the next turn: the whole history goes upstream (fitted to the model's
    /// context window by the client's strategy), and the new messages, usage and cost are
    /// appended to the conversation.
    pub async fn send(&self, id: &str, input: impl Into<ChatInput>) -> Result<ChatResponse> {
        let (conversation, new_messages, request) = self.turn(id, input.into()).await?;
        let response = self.exllm.chat(&conversation.address(), request).await?;
        self.record(id, new_messages, &response).await?;
        Ok(response)
    }

    /// Sends `input` as the next turn and streams the reply; the turn is recorded when the
    /// stream completes (a failed stream records nothing).
    pub async fn send_stream(&self, id: &str, input: impl Into<ChatInput>) -> Result<ChatStream> {
        let (conversation, new_messages, request) = self.turn(id, input.into()).await?;
        let stream = self.exllm.stream(&conversation.address(), request).await?;
        let store = Arc::clone(self.store()?);
        let id = id.to_owned();
        let stream = futures_util::stream::unfold(
            Some((stream, store, id, new_messages)),
            |state| async move {
                let (mut stream, store, id, new_messages) = state?;
                match stream.next().await {
                    Some(Ok(StreamEvent::Done(response))) => {
                        let mut messages = new_messages;
                        messages.push(response.to_message());
                        match store
                            .append(&id, messages, response.usage, response.cost)
                            .await
                        {
                            Ok(_) => Some((Ok(StreamEvent::Done(response)), None)),
                            Err(err) => Some((Err(err), None)),
                        }
                    }
                    Some(Ok(event)) => Some((Ok(event), Some((stream, store, id, new_messages)))),
                    Some(Err(err)) => Some((Err(err), None)),
                    None => None,
                }
            },
        );
        Ok(Box::pin(stream))
    }

    async fn turn(
        &self,
        id: &str,
        input: ChatInput,
    ) -> Result<(Conversation, Vec<Message>, ChatRequest)> {
        let conversation = self.get(id).await?;
        let (new_messages, template) = match input {
            ChatInput::Request(mut request) => {
                let messages = std::mem::take(&mut request.messages);
                (messages, request)
            }
            other => (other.into_messages(), ChatRequest::default()),
        };
        if new_messages.is_empty() {
            return Err(Error::validation(
                "messages",
                "a conversation turn needs at least one message",
            ));
        }
        let mut request = template;
        request.messages = conversation.messages.clone();
        request.messages.extend(new_messages.iter().cloned());
        request.extensions.insert(ConversationRef(id.to_owned()));
        let request = self.fit(&conversation, request)?;
        Ok((conversation, new_messages, request))
    }

    /// Fits the history to the model's context window (when the catalogue knows it) with the
    /// client's strategy; the stored conversation keeps every message.
    fn fit(&self, conversation: &Conversation, request: ChatRequest) -> Result<ChatRequest> {
        let Some(model) = self
            .exllm
            .catalogue()
            .get(&conversation.provider, &conversation.model)
        else {
            return Ok(request);
        };
        let Some(window) = model.context_window else {
            return Ok(request);
        };
        let settings = self.exllm.context_settings();
        let counter = (settings.counter)(&conversation.provider, &conversation.model);
        let max_output = request
            .max_tokens
            .or(self.exllm.defaults().max_tokens)
            .unwrap_or(0);
        crate::context::fit_request(
            request,
            u64::from(window),
            u64::from(max_output),
            settings.reserve,
            settings.strategy,
            counter.as_ref(),
        )
    }

    async fn record(
        &self,
        id: &str,
        mut messages: Vec<Message>,
        response: &ChatResponse,
    ) -> Result<()> {
        messages.push(response.to_message());
        self.store()?
            .append(id, messages, response.usage, response.cost)
            .await?;
        Ok(())
    }
}

/// Checks an export document completely: format, id, provider, model, and every message.
fn parse_export(doc: &Value) -> Result<Conversation> {
    let bad = |why: String| {
        Error::new(
            ErrorKind::Decode,
            format!("not a conversation export: {why}"),
        )
    };
    let obj = doc
        .as_object()
        .ok_or_else(|| bad("the document is not a JSON object".into()))?;
    match obj.get("format").and_then(Value::as_str) {
        Some(EXPORT_FORMAT) | None => {}
        Some(other) => {
            return Err(bad(format!(
                "unknown format `{other}` (expected {EXPORT_FORMAT})"
            )));
        }
    }
    for field in ["id", "provider", "model", "messages"] {
        if !obj.contains_key(field) {
            return Err(bad(format!("the field `{field}` is missing")));
        }
    }
    if let Some(messages) = obj.get("messages").and_then(Value::as_array) {
        for (i, m) in messages.iter().enumerate() {
            serde_json::from_value::<Message>(m.clone())
                .map_err(|e| bad(format!("message {i} is invalid: {e}")))?;
        }
    }
    let mut conversation: Conversation =
        serde_json::from_value(doc.clone()).map_err(|e| bad(e.to_string()))?;
    if conversation.provider.trim().is_empty() || conversation.model.trim().is_empty() {
        return Err(bad("provider and model must not be empty".into()));
    }
    // A tool result must answer a call made earlier in the same conversation.
    let mut calls = std::collections::HashSet::new();
    for (i, m) in conversation.messages.iter().enumerate() {
        for part in &m.content {
            match part {
                ContentPart::ToolCall(call) => {
                    calls.insert(call.id.clone());
                }
                ContentPart::ToolResult(result) if !calls.contains(&result.call_id) => {
                    return Err(bad(format!(
                        "message {i} answers tool call `{}`, which no earlier message made",
                        result.call_id
                    )));
                }
                _ => {}
            }
        }
        if m.role == Role::Tool
            && !m
                .content
                .iter()
                .any(|p| matches!(p, ContentPart::ToolResult(_)))
        {
            return Err(bad(format!("message {i} has role tool but no tool result")));
        }
    }
    conversation.created_at_ms = 0;
    conversation.updated_at_ms = 0;
    Ok(conversation)
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no conversation with id `{id}`"),
    )
}
