//! The `ExLLM` facade: providers by name, one call API over all of them, pricing, conversations.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures_util::StreamExt;

use crate::chat::{ChatRequest, ChatResponse, Message, Role};
use crate::context::{ContextStrategy, EstimateCounter, TokenCounter};
use crate::conversations::Conversations;
use crate::embed::{EmbedRequest, EmbedResponse};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Capability, Catalogue, Model};
use crate::ports::{ChatProvider, ConversationStore, Middleware, Next};
use crate::stream::{ChatStream, StreamEvent};

/// What to send: a prompt, messages, or a full request.
#[derive(Debug, Clone)]
pub enum ChatInput {
    /// One user message.
    Text(String),
    /// A list of messages.
    Messages(Vec<Message>),
    /// A complete request (its `model` is replaced by the address passed with it).
    Request(ChatRequest),
}

impl From<&str> for ChatInput {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}
impl From<String> for ChatInput {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}
impl From<&String> for ChatInput {
    fn from(text: &String) -> Self {
        Self::Text(text.clone())
    }
}
impl From<Message> for ChatInput {
    fn from(message: Message) -> Self {
        Self::Messages(vec![message])
    }
}
impl From<Vec<Message>> for ChatInput {
    fn from(messages: Vec<Message>) -> Self {
        Self::Messages(messages)
    }
}
impl From<ChatRequest> for ChatInput {
    fn from(request: ChatRequest) -> Self {
        Self::Request(request)
    }
}

impl ChatInput {
    pub(crate) fn into_messages(self) -> Vec<Message> {
        match self {
            Self::Text(text) => vec![Message::user(text)],
            Self::Messages(messages) => messages,
            Self::Request(request) => request.messages,
        }
    }
}

/// Sampling options for a call. Set on the client as defaults, and per call; a per-call value
/// wins over the request's own, which wins over the client default.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// Temperature (0–2).
    pub temperature: Option<f32>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
    /// Top-p (0–1).
    pub top_p: Option<f32>,
    /// Stop sequences (replace the request's when set).
    pub stop: Option<Vec<String>>,
    /// Seed.
    pub seed: Option<i64>,
    /// A system prompt put first when the messages have none.
    pub system: Option<String>,
    /// `Some(false)` keeps this call out of every response cache (read and write).
    pub cache: Option<bool>,
    /// Middleware for this call only, run outside (before) the client's.
    pub middleware: Vec<Arc<dyn Middleware>>,
}

impl PartialEq for CallOptions {
    /// Compares the sampling options; middleware are compared by identity.
    fn eq(&self, other: &Self) -> bool {
        self.temperature == other.temperature
            && self.max_tokens == other.max_tokens
            && self.top_p == other.top_p
            && self.stop == other.stop
            && self.seed == other.seed
            && self.system == other.system
            && self.cache == other.cache
            && self.middleware.len() == other.middleware.len()
            && self
                .middleware
                .iter()
                .zip(&other.middleware)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl CallOptions {
    /// Sets the temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }
    /// Sets the output token limit.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }
    /// Sets top-p.
    pub fn top_p(mut self, p: f32) -> Self {
        self.top_p = Some(p);
        self
    }
    /// Sets the stop sequences.
    pub fn stop(mut self, stop: Vec<String>) -> Self {
        self.stop = Some(stop);
        self
    }
    /// Sets the seed.
    pub fn seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Sets the system prompt.
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }
    /// Turns response caching on or off for this call.
    pub fn cache(mut self, enabled: bool) -> Self {
        self.cache = Some(enabled);
        self
    }
    /// Adds a middleware for this call only (outside the client's).
    pub fn middleware(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.middleware.push(middleware);
        self
    }

    /// Applies these options over `request`: set values replace the request's.
    fn apply_over(&self, request: &mut ChatRequest) {
        if self.temperature.is_some() {
            request.temperature = self.temperature;
        }
        if self.max_tokens.is_some() {
            request.max_tokens = self.max_tokens;
        }
        if self.top_p.is_some() {
            request.top_p = self.top_p;
        }
        if let Some(stop) = &self.stop {
            request.stop.clone_from(stop);
        }
        if self.seed.is_some() {
            request.seed = self.seed;
        }
        if let Some(enabled) = self.cache {
            request
                .extensions
                .insert(crate::extensions::CacheControl { enabled });
        }
        self.apply_system(request);
    }

    /// Applies these options under `request`: only fields the request leaves unset.
    fn apply_under(&self, request: &mut ChatRequest) {
        request.temperature = request.temperature.or(self.temperature);
        request.max_tokens = request.max_tokens.or(self.max_tokens);
        request.top_p = request.top_p.or(self.top_p);
        if request.stop.is_empty()
            && let Some(stop) = &self.stop
        {
            request.stop.clone_from(stop);
        }
        request.seed = request.seed.or(self.seed);
        self.apply_system(request);
    }

    fn apply_system(&self, request: &mut ChatRequest) {
        if let Some(system) = &self.system
            && !request.messages.iter().any(|m| m.role == Role::System)
        {
            request.messages.insert(0, Message::system(system.clone()));
        }
    }
}

/// A `provider/model` address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAddress {
    /// The provider name.
    pub provider: String,
    /// The provider's model id (may itself contain `/`, as OpenRouter's do).
    pub model: String,
}

impl ModelAddress {
    /// Parses `provider/model`, splitting at the first `/`.
    pub fn parse(address: &str) -> Result<Self> {
        match address.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(Self {
                provider: provider.to_owned(),
                model: model.to_owned(),
            }),
            _ => Err(Error::validation(
                "model",
                format!(
                    "`{address}` is not a model address: use `provider/model`, e.g. `openai/gpt-4o-mini`"
                ),
            )),
        }
    }
}

impl std::fmt::Display for ModelAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

struct Inner {
    providers: RwLock<BTreeMap<String, Arc<dyn ChatProvider>>>,
    catalogue: Arc<Catalogue>,
    store: Option<Arc<dyn ConversationStore>>,
    middleware: Vec<Arc<dyn Middleware>>,
    defaults: CallOptions,
    default_model: Option<String>,
    aliases: BTreeMap<String, String>,
    context: ContextSettings,
}

/// Chooses the token counter for a `provider` and `model` (exact where an encoding is known).
pub type CounterChooser = Arc<dyn Fn(&str, &str) -> Arc<dyn TokenCounter> + Send + Sync>;

/// How conversation histories are fitted to a model's context window.
#[derive(Clone)]
pub struct ContextSettings {
    /// The strategy.
    pub strategy: ContextStrategy,
    /// Tokens kept free on top of the output budget, for what counting only estimates.
    pub reserve: u64,
    /// The counter for each provider and model; the estimate by default.
    pub counter: CounterChooser,
}

impl Default for ContextSettings {
    fn default() -> Self {
        Self {
            strategy: ContextStrategy::default(),
            reserve: 256,
            counter: Arc::new(|_, _| Arc::new(EstimateCounter) as Arc<dyn TokenCounter>),
        }
    }
}

impl std::fmt::Debug for ContextSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextSettings")
            .field("strategy", &self.strategy)
            .field("reserve", &self.reserve)
            .finish_non_exhaustive()
    }
}

/// One API over every provider.
///
/// Cheap to clone: clones share providers, catalogue and store.
///
/// ```
/// # use std::sync::Arc;
/// # use exllm_core::{ExLLM, ChatProvider, ChatRequest, ChatResponse, ChatStream, Result};
/// # #[derive(Debug)] struct Echo;
/// # #[async_trait::async_trait]
/// # impl ChatProvider for Echo {
/// #     fn name(&self) -> &str { "echo" }
/// #     async fn chat(&self, r: ChatRequest) -> Result<ChatResponse> {
/// #         let mut resp = ChatResponse::new("echo", r.model.clone());
/// #         resp.content.push(exllm_core::ContentPart::text(r.messages[0].text()));
/// #         Ok(resp)
/// #     }
/// #     async fn stream(&self, _r: ChatRequest) -> Result<ChatStream> { unreachable!() }
/// # }
/// # tokio_test(async {
/// let exllm = ExLLM::builder().provider(Arc::new(Echo)).build();
/// let reply = exllm.chat("echo/any", "Hi").await?;
/// assert_eq!(reply.text(), "Hi");
/// # Ok(()) });
/// # fn tokio_test(f: impl std::future::Future<Output = Result<()>>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f).unwrap()
/// # }
/// ```
#[derive(Clone)]
pub struct ExLLM {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ExLLM {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExLLM")
            .field("providers", &self.list_providers())
            .field("catalogue_models", &self.inner.catalogue.len())
            .field("middleware", &self.inner.middleware)
            .field("store", &self.inner.store)
            .field("defaults", &self.inner.defaults)
            .field("default_model", &self.inner.default_model)
            .finish()
    }
}

/// Builds an [`ExLLM`].
#[derive(Default)]
pub struct ExLLMBuilder {
    providers: BTreeMap<String, Arc<dyn ChatProvider>>,
    catalogue: Option<Catalogue>,
    store: Option<Arc<dyn ConversationStore>>,
    middleware: Vec<Arc<dyn Middleware>>,
    defaults: CallOptions,
    default_model: Option<String>,
    aliases: BTreeMap<String, String>,
    context: ContextSettings,
}

impl std::fmt::Debug for ExLLMBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExLLMBuilder")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("default_model", &self.default_model)
            .finish_non_exhaustive()
    }
}

impl ExLLMBuilder {
    /// Registers a provider under its [`ChatProvider::name`].
    pub fn provider(mut self, provider: Arc<dyn ChatProvider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }
    /// Adds models or replaces prices on top of the built-in catalogue.
    pub fn catalogue(mut self, overrides: Catalogue) -> Self {
        let mut catalogue = self
            .catalogue
            .take()
            .unwrap_or_else(|| Catalogue::builtin().clone());
        catalogue.merge(overrides);
        self.catalogue = Some(catalogue);
        self
    }
    /// Sets the conversation store.
    pub fn store(mut self, store: Arc<dyn ConversationStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// Adds a middleware; the first added runs outermost.
    pub fn middleware(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.middleware.push(middleware);
        self
    }
    /// Sets the client's default call options.
    pub fn defaults(mut self, defaults: CallOptions) -> Self {
        self.defaults = defaults;
        self
    }
    /// Sets the model used when a call names none (an empty address).
    pub fn default_model(mut self, address: impl Into<String>) -> Self {
        self.default_model = Some(address.into());
        self
    }
    /// Adds an alias: `name` stands for the address `target`.
    pub fn alias(mut self, name: impl Into<String>, target: impl Into<String>) -> Self {
        self.aliases.insert(name.into(), target.into());
        self
    }
    /// Sets how conversation histories are fitted to a model's context window.
    pub fn context(mut self, context: ContextSettings) -> Self {
        self.context = context;
        self
    }
    /// Builds the client.
    pub fn build(self) -> ExLLM {
        ExLLM {
            inner: Arc::new(Inner {
                providers: RwLock::new(self.providers),
                catalogue: Arc::new(
                    self.catalogue
                        .unwrap_or_else(|| Catalogue::builtin().clone()),
                ),
                store: self.store,
                middleware: self.middleware,
                defaults: self.defaults,
                default_model: self.default_model,
                aliases: self.aliases,
                context: self.context,
            }),
        }
    }
}

impl ExLLM {
    /// A builder with no providers, the built-in catalogue and no store.
    pub fn builder() -> ExLLMBuilder {
        ExLLMBuilder::default()
    }

    /// Adds (or replaces) a provider at run time.
    pub fn register_provider(&self, provider: Arc<dyn ChatProvider>) {
        let mut providers = self
            .inner
            .providers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        providers.insert(provider.name().to_owned(), provider);
    }

    /// The names of the registered providers, sorted.
    pub fn list_providers(&self) -> Vec<String> {
        self.providers_read().keys().cloned().collect()
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Result<Arc<dyn ChatProvider>> {
        let providers = self.providers_read();
        providers.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = providers.keys().map(String::as_str).collect();
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "unknown provider `{name}`; known providers: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
            .with_field("model")
        })
    }

    /// The model catalogue in use.
    pub fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    /// The default model address, when one is set.
    pub fn default_model(&self) -> Option<&str> {
        self.inner.default_model.as_deref()
    }

    fn providers_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<dyn ChatProvider>>> {
        self.inner
            .providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves an address or alias (an empty string means the default model).
    pub fn resolve(&self, address: &str) -> Result<ModelAddress> {
        let address = if address.is_empty() {
            self.inner.default_model.as_deref().ok_or_else(|| {
                Error::validation(
                    "model",
                    "no model given and no default model configured (EXLLM_DEFAULT_MODEL)",
                )
            })?
        } else {
            address
        };
        let address = self
            .inner
            .aliases
            .get(address)
            .map(String::as_str)
            .unwrap_or(address);
        ModelAddress::parse(address)
    }

    /// Sends `input` to the model at `address` (`"provider/model"`) and waits for the reply.
    pub async fn chat(&self, address: &str, input: impl Into<ChatInput>) -> Result<ChatResponse> {
        self.chat_with(address, input, &CallOptions::default())
            .await
    }

    /// [`ExLLM::chat`] with per-call options.
    pub async fn chat_with(
        &self,
        address: &str,
        input: impl Into<ChatInput>,
        options: &CallOptions,
    ) -> Result<ChatResponse> {
        let (provider, request) = self.prepare(address, input.into(), options)?;
        let priced = self.priced(provider);
        let middleware = self.middleware_for(options);
        Next::new(&middleware, &priced).run(request).await
    }

    /// Sends `input` and streams the reply. The stream's last event is
    /// [`StreamEvent::Done`] with the complete response, usage and cost.
    pub async fn stream(&self, address: &str, input: impl Into<ChatInput>) -> Result<ChatStream> {
        self.stream_with(address, input, &CallOptions::default())
            .await
    }

    /// [`ExLLM::stream`] with per-call options.
    pub async fn stream_with(
        &self,
        address: &str,
        input: impl Into<ChatInput>,
        options: &CallOptions,
    ) -> Result<ChatStream> {
        let (provider, request) = self.prepare(address, input.into(), options)?;
        let priced = self.priced(provider);
        let middleware = self.middleware_for(options);
        Next::new(&middleware, &priced).run_stream(request).await
    }

    /// Embeds `inputs` with the model at `address`; the response carries usage and cost.
    pub async fn embed(&self, address: &str, inputs: Vec<String>) -> Result<EmbedResponse> {
        self.embed_request(address, EmbedRequest::new("", inputs))
            .await
    }

    /// [`ExLLM::embed`] with a full request (its `model` is replaced by the address's).
    pub async fn embed_request(
        &self,
        address: &str,
        mut request: EmbedRequest,
    ) -> Result<EmbedResponse> {
        let target = self.resolve(address)?;
        let provider = self.provider(&target.provider)?;
        request.model = target.model;
        if request.inputs.is_empty() {
            return Err(Error::validation(
                "inputs",
                "at least one input is required",
            ));
        }
        let requested = request.model.clone();
        let mut response = provider
            .embed(request)
            .await
            .map_err(|e| e.or_provider(provider.name()))?;
        if response.provider.is_empty() {
            response.provider = provider.name().to_owned();
        }
        if response.model.is_empty() {
            response.model.clone_from(&requested);
        }
        let ids = [response.model.as_str(), requested.as_str()];
        let pricing = self
            .inner
            .catalogue
            .pricing(provider.name(), &ids)
            .or_else(|| provider.pricing(&requested));
        response.cost = pricing.map(|p| crate::cost::Cost::compute(&response.usage, &p));
        if response.cost.is_none() {
            tracing::warn!(provider = provider.name(), model = %requested, "no price known for this embedding model; cost is unknown");
        }
        Ok(response)
    }

    /// The models of `provider` (or of every provider): the catalogue's, merged with the live
    /// list where the provider has one. Live models the catalogue does not know are listed
    /// without prices.
    pub async fn list_models(&self, provider: Option<&str>) -> Result<Vec<Model>> {
        let names = match provider {
            Some(name) => {
                self.provider(name)?;
                vec![name.to_owned()]
            }
            None => self.list_providers(),
        };
        let single = provider.is_some();
        let mut out = Vec::new();
        for name in names {
            let live = match self.provider(&name)?.list_models().await {
                Ok(live) => live,
                // Listing every provider must not fail because one local server is not
                // running; asking for that provider alone reports the error.
                Err(err) if !single => {
                    tracing::info!(provider = %name, error = %err, "live model list unavailable; listing the catalogue only");
                    Vec::new()
                }
                Err(err) => return Err(err),
            };
            let mut merged: BTreeMap<String, Model> = self
                .inner
                .catalogue
                .models_of(&name)
                .map(|m| (m.id.clone(), m.clone()))
                .collect();
            for model in live {
                merged.entry(model.id.clone()).or_insert(model);
            }
            out.extend(merged.into_values());
        }
        Ok(out)
    }

    /// Whether the model at `address` has `capability`, by the catalogue; `None` when the
    /// catalogue does not know the model.
    pub fn supports(&self, address: &str, capability: Capability) -> Option<bool> {
        let target = self.resolve(address).ok()?;
        self.inner
            .catalogue
            .get(&target.provider, &target.model)
            .map(|m| m.supports(capability))
    }

    /// The conversation API.
    pub fn conversations(&self) -> Conversations<'_> {
        Conversations { exllm: self }
    }

    /// The client's default call options.
    pub fn defaults(&self) -> &CallOptions {
        &self.inner.defaults
    }

    /// How conversation histories are fitted to context windows.
    pub fn context_settings(&self) -> &ContextSettings {
        &self.inner.context
    }

    /// The conversation store, when one is configured.
    pub fn store(&self) -> Option<&Arc<dyn ConversationStore>> {
        self.inner.store.as_ref()
    }

    /// Turns address, input and options into a validated request for a known provider.
    fn prepare(
        &self,
        address: &str,
        input: ChatInput,
        options: &CallOptions,
    ) -> Result<(Arc<dyn ChatProvider>, ChatRequest)> {
        let target = self.resolve(address)?;
        let provider = self.provider(&target.provider)?;
        let mut request = match input {
            ChatInput::Request(request) => request,
            other => ChatRequest {
                messages: other.into_messages(),
                ..ChatRequest::default()
            },
        };
        request.model = target.model;
        self.inner.defaults.apply_under(&mut request);
        options.apply_over(&mut request);
        validate(&request)?;
        if let Some(model) = self.inner.catalogue.get(provider.name(), &request.model) {
            check_capabilities(model, &request)?;
        }
        Ok((provider, request))
    }

    /// The call's middleware: its own first (outermost), then the client's.
    fn middleware_for(&self, options: &CallOptions) -> std::borrow::Cow<'_, [Arc<dyn Middleware>]> {
        if options.middleware.is_empty() {
            std::borrow::Cow::Borrowed(&self.inner.middleware)
        } else {
            let mut all = options.middleware.clone();
            all.extend(self.inner.middleware.iter().cloned());
            std::borrow::Cow::Owned(all)
        }
    }

    /// `provider` wrapped so that every response and final stream event leaving it is priced:
    /// middleware (caches, the ledger) then see costs.
    fn priced(&self, provider: Arc<dyn ChatProvider>) -> PricedProvider {
        PricedProvider::new(provider, Arc::clone(&self.inner.catalogue))
    }
}

/// A provider whose responses are priced from the catalogue as they leave it, and whose
/// streams always end with `Done` or an error: the innermost step of every pipeline (and of a
/// fallback's pipeline to another provider).
#[derive(Debug)]
pub struct PricedProvider {
    provider: Arc<dyn ChatProvider>,
    catalogue: Arc<Catalogue>,
}

impl PricedProvider {
    /// `provider`, priced from `catalogue`.
    pub fn new(provider: Arc<dyn ChatProvider>, catalogue: Arc<Catalogue>) -> Self {
        Self {
            provider,
            catalogue,
        }
    }
}

#[async_trait::async_trait]
impl ChatProvider for PricedProvider {
    fn name(&self) -> &str {
        self.provider.name()
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let requested = request.model.clone();
        let mut response = self
            .provider
            .chat(request)
            .await
            .map_err(|e| e.or_provider(self.provider.name()))?;
        price_response(
            &self.catalogue,
            self.provider.as_ref(),
            &requested,
            &mut response,
        );
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let requested = request.model.clone();
        let name = self.provider.name().to_owned();
        let stream = self
            .provider
            .stream(request)
            .await
            .map_err(|e| e.or_provider(&name))?;
        let provider = Arc::clone(&self.provider);
        let catalogue = Arc::clone(&self.catalogue);
        let stream = futures_util::stream::unfold(Some(stream), move |state| {
            let provider = Arc::clone(&provider);
            let catalogue = Arc::clone(&catalogue);
            let requested = requested.clone();
            let name = name.clone();
            async move {
                let mut stream = state?;
                match stream.next().await {
                    Some(Ok(StreamEvent::Done(mut response))) => {
                        price_response(&catalogue, provider.as_ref(), &requested, &mut response);
                        // Done is the last event: end the stream after it.
                        Some((Ok(StreamEvent::Done(response)), None))
                    }
                    Some(Ok(event)) => Some((Ok(event), Some(stream))),
                    Some(Err(err)) => Some((Err(err.or_provider(&name)), None)),
                    None => Some((
                        Err(Error::new(
                            ErrorKind::StreamTruncated,
                            "the provider's stream ended without a final response",
                        )
                        .with_provider(name)),
                        None,
                    )),
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn list_models(&self) -> Result<Vec<Model>> {
        self.provider.list_models().await
    }

    async fn health(&self) -> Result<()> {
        self.provider.health().await
    }

    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse> {
        self.provider.embed(request).await
    }

    fn pricing(&self, model: &str) -> Option<crate::model::Pricing> {
        self.provider.pricing(model)
    }
}

/// Sets `response.provider` and prices it from the catalogue, then from the provider's own
/// prices (local providers are free). Logs a warning when no price is known: the cost stays
/// `None` rather than a guess.
pub fn price_response(
    catalogue: &Catalogue,
    provider: &dyn ChatProvider,
    requested: &str,
    response: &mut ChatResponse,
) {
    if response.provider.is_empty() {
        response.provider = provider.name().to_owned();
    }
    if response.model.is_empty() {
        response.model = requested.to_owned();
    }
    let ids = [response.model.as_str(), requested];
    let pricing = catalogue
        .pricing(provider.name(), &ids)
        .or_else(|| provider.pricing(requested));
    response.cost = pricing.map(|p| crate::cost::Cost::compute(&response.usage, &p));
    if response.cost.is_none() {
        tracing::warn!(
            provider = provider.name(),
            model = requested,
            "no price known for this model; cost is unknown"
        );
    }
}

/// Checks a request before any IO.
pub fn validate(request: &ChatRequest) -> Result<()> {
    if request.messages.is_empty() {
        return Err(Error::validation(
            "messages",
            "at least one message is required",
        ));
    }
    if request.model.trim().is_empty() {
        return Err(Error::validation("model", "the model id is empty"));
    }
    if let Some(t) = request.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(Error::validation(
            "temperature",
            format!("temperature must be between 0 and 2, got {t}"),
        ));
    }
    if let Some(p) = request.top_p
        && !(0.0..=1.0).contains(&p)
    {
        return Err(Error::validation(
            "top_p",
            format!("top_p must be between 0 and 1, got {p}"),
        ));
    }
    if request.max_tokens == Some(0) {
        return Err(Error::validation(
            "max_tokens",
            "max_tokens must be at least 1",
        ));
    }
    if let Some(tool) = request.tools.iter().find(|t| t.name.trim().is_empty()) {
        return Err(Error::validation(
            "tools",
            format!(
                "a tool has an empty name (description: {:?})",
                tool.description
            ),
        ));
    }
    Ok(())
}

/// About four characters per token: a deliberately generous average (English prose runs
/// nearer 4.5, code nearer 3), so that the estimate rarely exceeds the true count.
const CHARS_PER_TOKEN: usize = 4;

/// A lower-bound estimate of a request's prompt tokens from its messages' text;
/// images, tool schemas and chat framing are not counted
/// ([`crate::context::EstimateCounter::count_content`]). The full estimate is
/// [`crate::context::EstimateCounter`]'s `count_request`, and exact counts for an encoding come
/// from a [`crate::context::TokenCounter`] such as tiktoken's in `exllm-infrastructure`.
pub fn estimate_prompt_tokens(request: &ChatRequest) -> u64 {
    crate::context::EstimateCounter::count_content(&request.messages)
}

/// Checks a request against what the catalogue says the model can do, before any IO.
pub fn check_capabilities(model: &Model, request: &ChatRequest) -> Result<()> {
    if !model.supports(Capability::Vision) && request.messages.iter().any(Message::has_image) {
        return Err(Error::validation(
            "messages",
            format!(
                "{} does not accept images (no vision capability)",
                model.address()
            ),
        ));
    }
    if !request.tools.is_empty() && !model.supports(Capability::Tools) {
        return Err(Error::validation(
            "tools",
            format!("{} does not support tool calls", model.address()),
        ));
    }
    if let Some(window) = model.context_window {
        let estimate = estimate_prompt_tokens(request);
        if estimate > u64::from(window) {
            return Err(Error::new(
                ErrorKind::ContextLengthExceeded,
                format!(
                    "the prompt is about {estimate} tokens (estimated at {CHARS_PER_TOKEN} characters per token), more than the {window}-token context window of {}",
                    model.address()
                ),
            )
            .with_field("messages"));
        }
    }
    Ok(())
}
