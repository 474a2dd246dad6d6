//! `Fallback`: when a call fails in a way another provider might not (a retryable failure or
//! an open circuit), tries an ordered list of other providers and models.
//!
//! Each target runs through the rest of the pipeline below the fallback (circuit breaker,
//! retry, recorder — see [`crate::retry`] for the order), so every provider keeps its own
//! circuit and every attempt is recorded. The response's `provider` and `model` say who
//! answered; its metadata's `fallback_from` names the provider that failed first.
//!
//! A stream falls back only before its first event: once the consumer has seen part of a
//! reply, a failure ends the stream with the typed error (carrying the partial response and
//! its usage, as the provider's adapter attached them).

use std::sync::Arc;

use async_trait::async_trait;
use exllm_core::facade::PricedProvider;
use exllm_core::{
    Catalogue, ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, Middleware,
    Next, Result, StreamEvent,
};
use futures_util::StreamExt;
use serde_json::Value;

use crate::retry::{First, failed, first_event, prepend};

/// Where a failed call goes next: a provider and the model to ask it for.
#[derive(Debug, Clone)]
pub struct FallbackTarget {
    /// The provider.
    pub provider: Arc<dyn ChatProvider>,
    /// The model id at that provider (without the `provider/` prefix).
    pub model: String,
}

impl FallbackTarget {
    /// `model` at `provider`.
    pub fn new(provider: Arc<dyn ChatProvider>, model: impl Into<String>) -> Self {
        Self {
            provider,
            model: model.into(),
        }
    }
}

/// What [`Fallback`] tries, and for which calls.
///
/// ```
/// # use std::sync::Arc;
/// # use exllm_core::ChatProvider;
/// use exllm_infrastructure::fallback::{Fallback, FallbackConfig, FallbackTarget};
/// # fn demo(anthropic: Arc<dyn ChatProvider>) {
/// let fallback = Fallback::new(FallbackConfig {
///     targets: vec![FallbackTarget::new(anthropic, "claude-haiku-4-5")],
///     // Only calls to OpenAI fall back; empty means every call.
///     primaries: vec!["openai".into()],
///     ..FallbackConfig::default()
/// });
/// # let _ = fallback; }
/// ```
#[derive(Debug, Clone, Default)]
pub struct FallbackConfig {
    /// The targets, in the order they are tried after the primary.
    pub targets: Vec<FallbackTarget>,
    /// The calls that fall back, by `provider` or `provider/model`; empty means all.
    pub primaries: Vec<String>,
    /// Prices the targets' replies (the facade prices only the primary's); the built-in
    /// catalogue when `None`.
    pub catalogue: Option<Arc<Catalogue>>,
}

/// The fallback middleware.
#[derive(Debug, Clone, Default)]
pub struct Fallback {
    config: FallbackConfig,
    targets: Vec<Arc<dyn ChatProvider>>,
}

impl Fallback {
    /// A fallback middleware configured by `config`.
    pub fn new(config: FallbackConfig) -> Self {
        let catalogue = config
            .catalogue
            .clone()
            .unwrap_or_else(|| Arc::new(Catalogue::builtin().clone()));
        let targets = config
            .targets
            .iter()
            .map(|target| {
                // Priced as the facade prices the primary, so a fallback's reply has a cost.
                Arc::new(PricedProvider::new(
                    Arc::clone(&target.provider),
                    Arc::clone(&catalogue),
                )) as Arc<dyn ChatProvider>
            })
            .collect();
        Self { config, targets }
    }

    /// A fallback for every call to `targets`, in order.
    pub fn to(targets: Vec<FallbackTarget>) -> Self {
        Self::new(FallbackConfig {
            targets,
            ..FallbackConfig::default()
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &FallbackConfig {
        &self.config
    }

    /// The targets for a call to `provider`/`model`, the primary itself left out.
    fn targets_for<'a>(
        &'a self,
        provider: &'a str,
        model: &'a str,
    ) -> impl Iterator<Item = (&'a dyn ChatProvider, &'a str)> + 'a {
        let applies = self.config.primaries.is_empty()
            || self.config.primaries.iter().any(|p| {
                p == provider
                    || p.split_once('/')
                        .is_some_and(|(p, m)| p == provider && m == model)
            });
        self.config
            .targets
            .iter()
            .zip(&self.targets)
            .filter(move |(target, _)| {
                applies && !(target.provider.name() == provider && target.model == model)
            })
            .map(|(target, priced)| (priced.as_ref(), target.model.as_str()))
    }
}

/// Whether a failure is worth trying elsewhere.
fn falls_back(err: &Error) -> bool {
    err.is_retryable() || err.kind() == ErrorKind::CircuitOpen
}

#[async_trait]
impl Middleware for Fallback {
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        let primary = next.provider().name().to_owned();
        let model = request.model.clone();
        let mut last = match next.run(request.clone()).await {
            Ok(response) => return Ok(response),
            Err(err) if falls_back(&err) => err,
            Err(err) => return Err(err),
        };
        for (target, target_model) in self.targets_for(&primary, &model) {
            tracing::info!(
                from = %primary,
                to = target.name(),
                model = target_model,
                kind = %last.kind(),
                "falling back"
            );
            let mut this_try = request.clone();
            this_try.model = target_model.to_owned();
            match Next::new(next.middleware(), target).run(this_try).await {
                Ok(mut response) => {
                    mark(&mut response, &primary);
                    return Ok(response);
                }
                Err(err) if falls_back(&err) => last = err,
                Err(err) => return Err(err),
            }
        }
        Err(last)
    }

    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        let primary = next.provider().name().to_owned();
        let model = request.model.clone();
        let mut last = match start(next, request.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(failure) if falls_back(failure.error()) => failure,
            Err(failure) => return failure.into_result(),
        };
        for (target, target_model) in self.targets_for(&primary, &model) {
            tracing::info!(
                from = %primary,
                to = target.name(),
                model = target_model,
                kind = %last.error().kind(),
                "falling back"
            );
            let mut this_try = request.clone();
            this_try.model = target_model.to_owned();
            match start(Next::new(next.middleware(), target), this_try).await {
                Ok(stream) => {
                    let primary = primary.clone();
                    return Ok(Box::pin(stream.map(move |item| match item {
                        Ok(StreamEvent::Done(mut response)) => {
                            mark(&mut response, &primary);
                            Ok(StreamEvent::Done(response))
                        }
                        other => other,
                    })));
                }
                Err(failure) if falls_back(failure.error()) => last = failure,
                Err(failure) => return failure.into_result(),
            }
        }
        last.into_result()
    }
}

/// A stream's failure before its first event, kept in the form it came in: the call
/// failing (`Err` from the pipeline) or the stream's first item being an error.
enum Failure {
    Open(Error),
    FirstItem(Error),
}

impl Failure {
    fn error(&self) -> &Error {
        match self {
            Self::Open(err) | Self::FirstItem(err) => err,
        }
    }

    /// The failure handed on as it came.
    fn into_result(self) -> Result<ChatStream> {
        match self {
            Self::Open(err) => Err(err),
            Self::FirstItem(err) => Ok(failed(err)),
        }
    }
}

/// Opens a stream and waits for its first event: the stream (first event included), or the
/// failure that came before any event.
async fn start(next: Next<'_>, request: ChatRequest) -> std::result::Result<ChatStream, Failure> {
    let stream = next.run_stream(request).await.map_err(Failure::Open)?;
    match first_event(stream).await {
        First::Event(event, rest) => Ok(prepend(event, rest)),
        First::Failed(err) => Err(Failure::FirstItem(err)),
        First::Ended => Ok(Box::pin(futures_util::stream::empty())),
    }
}

fn mark(response: &mut ChatResponse, primary: &str) {
    response.metadata.insert(
        "fallback_from".to_owned(),
        Value::String(primary.to_owned()),
    );
}
