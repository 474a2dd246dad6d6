//! Ports: the traits behind which IO and swappable technology sit.

use std::sync::Arc;

use async_trait::async_trait;

use crate::chat::{ChatRequest, ChatResponse, Message};
use crate::conversation::Conversation;
use crate::cost::Cost;
use crate::embed::{EmbedRequest, EmbedResponse};
use crate::error::{Error, ErrorKind, Result};
use crate::ledger::{UsageQuery, UsageRecord, UsageTotal};
use crate::model::{Model, Pricing};
use crate::stream::ChatStream;
use crate::usage::Usage;

/// A chat provider: OpenAI, Anthropic, a local server, a mock.
///
/// Requests reach a provider with `model` already stripped of the `provider/` prefix and
/// validated. Implementations translate and send; they do not price (the facade does).
#[async_trait]
pub trait ChatProvider: Send + Sync + std::fmt::Debug {
    /// The provider's name, as used in `provider/model` addresses.
    fn name(&self) -> &str;

    /// Sends a request and waits for the whole reply.
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse>;

    /// Sends a request and streams the reply. The stream ends with `Done` or an error.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream>;

    /// The models the provider serves right now (a live list), when it has such an endpoint.
    /// The default is an empty list: the catalogue still knows the provider's models.
    async fn list_models(&self) -> Result<Vec<Model>> {
        Ok(Vec::new())
    }

    /// Checks that the provider is reachable and the credentials work.
    async fn health(&self) -> Result<()> {
        Ok(())
    }

    /// Embeds texts. The default says the provider has no embeddings.
    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse> {
        let _ = request;
        Err(unsupported(self.name(), "embeddings"))
    }

    /// Prices the provider itself knows for `model`, consulted when the catalogue has none
    /// (local providers such as Ollama and the mock are free).
    fn pricing(&self, _model: &str) -> Option<Pricing> {
        None
    }
}

/// Where conversations are kept.
#[async_trait]
pub trait ConversationStore: Send + Sync + std::fmt::Debug {
    /// Stores a new conversation and returns its id. A conversation with an empty id gets a
    /// fresh, unique one from the store.
    async fn create(&self, conversation: Conversation) -> Result<String>;

    /// The conversation `id`, or `None`.
    async fn get(&self, id: &str) -> Result<Option<Conversation>>;

    /// Appends `messages` to conversation `id` and adds `usage` and `cost` to its totals,
    /// atomically. Returns the updated conversation; a missing id is a not-found error.
    async fn append(
        &self,
        id: &str,
        messages: Vec<Message>,
        usage: Usage,
        cost: Option<Cost>,
    ) -> Result<Conversation>;

    /// Conversations matching `filter`, newest first (by creation), one page of them.
    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>>;

    /// Deletes conversation `id`; returns whether it existed.
    async fn delete(&self, id: &str) -> Result<bool>;
}

/// Which conversations to list, and which page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConversationFilter {
    /// Only this provider's.
    pub provider: Option<String>,
    /// Only this model's.
    pub model: Option<String>,
    /// At most this many (all when `None`).
    pub limit: Option<usize>,
    /// Skip this many first.
    pub offset: usize,
}

impl ConversationFilter {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }
    /// Only `provider`'s conversations.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    /// Only `model`'s conversations.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
    /// One page: `limit` conversations after skipping `offset`.
    pub fn page(mut self, offset: usize, limit: usize) -> Self {
        self.offset = offset;
        self.limit = Some(limit);
        self
    }
}

/// Where every call's usage and cost is recorded, for budgets and reports.
#[async_trait]
pub trait UsageLedger: Send + Sync + std::fmt::Debug {
    /// Records one attempt.
    async fn record(&self, record: UsageRecord) -> Result<()>;

    /// Totals over the records `query` covers, grouped as it says, sorted by key.
    async fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotal>>;
}

/// A response cache backend (in-process, Redis, …): opaque bytes under a key, with a TTL.
/// The cache middleware owns keys and (de)serialization; a backend only stores.
#[async_trait]
pub trait ResponseCache: Send + Sync + std::fmt::Debug {
    /// The bytes stored under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Stores `value` under `key` for `ttl`.
    async fn put(&self, key: &str, value: Vec<u8>, ttl: std::time::Duration) -> Result<()>;
}

/// What a rate-limit backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// The amount was taken.
    Granted,
    /// Not now: the amount would be available after this wait.
    Wait(std::time::Duration),
}

/// A rate-limit backend (in-process, Redis, …): buckets of `limit` units per `window`.
/// A distributed backend must take atomically, so that instances sharing it never exceed a
/// limit together.
#[async_trait]
pub trait RateLimitStore: Send + Sync + std::fmt::Debug {
    /// Takes `amount` units from bucket `key`, whose capacity is `limit` per `window`.
    async fn acquire(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: std::time::Duration,
    ) -> Result<Acquire>;

    /// Adds `delta` units to bucket `key` unconditionally — negative gives units back — to
    /// settle an amount taken by estimate (tokens per minute) against the actual one, or to
    /// return what was taken for a call that never went out. The default does nothing: a
    /// backend that cannot settle keeps the estimate.
    async fn settle(
        &self,
        key: &str,
        delta: i64,
        limit: u64,
        window: std::time::Duration,
    ) -> Result<()> {
        let _ = (key, delta, limit, window);
        Ok(())
    }
}

/// The rest of the pipeline after a middleware: the later middleware, then the provider.
///
/// `Copy`, so that a middleware may run the rest more than once (a retry) or point it at
/// another provider (a fallback: `Next::new(next.middleware(), other)`).
#[derive(Clone, Copy)]
pub struct Next<'a> {
    middleware: &'a [Arc<dyn Middleware>],
    provider: &'a dyn ChatProvider,
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("middleware_left", &self.middleware.len())
            .field("provider", &self.provider.name())
            .finish()
    }
}

impl<'a> Next<'a> {
    /// The pipeline `middleware`, then `provider`.
    pub fn new(middleware: &'a [Arc<dyn Middleware>], provider: &'a dyn ChatProvider) -> Self {
        Self {
            middleware,
            provider,
        }
    }

    /// The provider at the end of the pipeline.
    pub fn provider(&self) -> &'a dyn ChatProvider {
        self.provider
    }

    /// The middleware still to run before the provider.
    pub fn middleware(&self) -> &'a [Arc<dyn Middleware>] {
        self.middleware
    }

    /// Runs the rest of the pipeline for a plain call.
    pub async fn run(self, request: ChatRequest) -> Result<ChatResponse> {
        match self.middleware.split_first() {
            Some((first, rest)) => first.handle(request, Next::new(rest, self.provider)).await,
            None => self.provider.chat(request).await,
        }
    }

    /// Runs the rest of the pipeline for a streaming call.
    pub async fn run_stream(self, request: ChatRequest) -> Result<ChatStream> {
        match self.middleware.split_first() {
            Some((first, rest)) => {
                first
                    .handle_stream(request, Next::new(rest, self.provider))
                    .await
            }
            None => self.provider.stream(request).await,
        }
    }
}

/// Code that runs around every call: retries, limits, caches, logging, your own.
///
/// Middleware run in the order they were added, the first outermost. Both methods default to
/// passing the call on, so a middleware overrides only what it cares about; a middleware that
/// must see streams wraps the stream it gets from `next`.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use exllm_core::{ChatRequest, ChatResponse, Middleware, Next, Result};
///
/// #[derive(Debug, Default)]
/// struct CountCalls(AtomicUsize);
///
/// #[async_trait::async_trait]
/// impl Middleware for CountCalls {
///     async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         next.run(request).await
///     }
/// }
/// ```
#[async_trait]
pub trait Middleware: Send + Sync + std::fmt::Debug {
    /// Handles a plain call.
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        next.run(request).await
    }

    /// Handles a streaming call.
    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        next.run_stream(request).await
    }
}

/// The error for an operation a provider does not offer.
pub fn unsupported(provider: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{provider} does not support {what}"),
    )
    .with_provider(provider)
}
