//! Wiring: turns [`Settings`] into an [`ExLLM`] with concrete adapters.

use std::sync::Arc;
use std::time::Duration;

use exllm_adapters_persistence::InMemoryStore;
use exllm_adapters_providers::anthropic::{AnthropicConfig, AnthropicProvider};
use exllm_adapters_providers::compatible;
use exllm_adapters_providers::gemini::{GeminiConfig, GeminiProvider};
use exllm_adapters_providers::ollama::{OllamaConfig, OllamaProvider};
use exllm_adapters_providers::{MockProvider, OpenAiConfig, OpenAiProvider};
use exllm_core::{CallOptions, Catalogue, ChatProvider, Error, ExLLM, Result, Secret};
use exllm_infrastructure::{HttpConfig, HttpExecutor};

use crate::config::{Environment, Settings, builtin_providers};

/// The model the CLI and `from_env` answer with when no key is configured.
pub const MOCK_MODEL: &str = "mock/echo";

/// An [`ExLLM`] built from settings, with what the wiring learned on the way.
#[derive(Debug, Clone)]
pub struct Wired {
    /// The client.
    pub exllm: ExLLM,
    /// Built-in providers that are not configured, with the variable that would configure them.
    pub unconfigured: Vec<(&'static str, &'static str)>,
    /// Whether the default model is the mock because no provider is configured.
    pub mock_fallback: bool,
}

impl Wired {
    /// Checks that the provider of `address` is usable, naming the missing variable when it is a
    /// known provider without a key.
    pub fn check_address(&self, address: &str) -> Result<()> {
        let target = self.exllm.resolve(address)?;
        if let Some((_, var)) = self
            .unconfigured
            .iter()
            .find(|(name, _)| *name == target.provider)
        {
            return Err(
                Error::config(format!("not configured: set {var}")).with_provider(target.provider)
            );
        }
        Ok(())
    }
}

/// Builds the client: every configured provider plus `mock`, an in-memory conversation store,
/// the built-in catalogue (with the user's overrides), defaults and aliases.
///
/// Providers that need a key are registered only when it is set (the others are listed in
/// [`Wired::unconfigured`]); keyless local servers (Ollama, LM Studio, vLLM, llama.cpp) are
/// always registered.
pub fn build(settings: &Settings) -> Result<Wired> {
    let executor = HttpExecutor::new(HttpConfig {
        connect_timeout: Duration::from_secs(settings.http.connect_timeout_secs),
        total_timeout: Duration::from_secs(settings.http.timeout_secs),
        idle_timeout: Duration::from_secs(settings.http.idle_timeout_secs),
        ..HttpConfig::default()
    })?;

    let mut builder = ExLLM::builder()
        .provider(Arc::new(MockProvider::new()))
        .store(Arc::new(InMemoryStore::new()));

    let mut unconfigured = Vec::new();
    let mut first_configured: Option<String> = None;
    for p in builtin_providers() {
        let provider = settings.provider(p.name);
        let key = provider.and_then(|s| s.api_key.clone());
        let base_url = provider.and_then(|s| s.base_url.clone());
        if p.needs_key() && key.is_none() {
            unconfigured.push((p.name, p.key_vars[0]));
            continue;
        }
        builder = builder.provider(builtin(p.name, key, base_url, &executor)?);
        if p.needs_key()
            && first_configured.is_none()
            && let Some(model) = p.default_model
        {
            first_configured = Some(format!("{}/{model}", p.name));
        }
    }
    for (name, spec) in &settings.compatible {
        let key = settings.provider(name).and_then(|s| s.api_key.clone());
        let config = spec.config(key);
        builder = builder.provider(Arc::new(OpenAiProvider::new(config, executor.clone())));
    }

    if let Some(path) = &settings.catalogue {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read catalogue {}: {e}", path.display())))?;
        builder = builder.catalogue(Catalogue::from_json(&text)?);
    }

    let mut defaults = CallOptions::default();
    defaults.temperature = settings.defaults.temperature;
    defaults.max_tokens = settings.defaults.max_tokens;
    builder = builder.defaults(defaults);
    for (alias, target) in &settings.aliases {
        builder = builder.alias(alias.clone(), target.clone());
    }

    let (default_model, mock_fallback) = match (&settings.default_model, first_configured) {
        (Some(model), _) => (model.clone(), false),
        (None, Some(model)) => (model, false),
        (None, None) => (MOCK_MODEL.to_owned(), true),
    };
    builder = builder.default_model(default_model);

    Ok(Wired {
        exllm: builder.build(),
        unconfigured,
        mock_fallback,
    })
}

/// The adapter of built-in provider `name`.
fn builtin(
    name: &str,
    key: Option<Secret>,
    base_url: Option<String>,
    executor: &HttpExecutor,
) -> Result<Arc<dyn ChatProvider>> {
    let executor = executor.clone();
    Ok(match name {
        "openai" => Arc::new(OpenAiProvider::new(
            OpenAiConfig::openai(key, base_url),
            executor,
        )),
        "anthropic" => Arc::new(AnthropicProvider::new(
            AnthropicConfig::new(key, base_url),
            executor,
        )),
        "gemini" => Arc::new(GeminiProvider::new(
            GeminiConfig::new(key, base_url),
            executor,
        )),
        "ollama" => Arc::new(OllamaProvider::new(
            OllamaConfig::new(base_url, key),
            executor,
        )),
        other => {
            let service = compatible::service(other).ok_or_else(|| {
                Error::config(format!("no adapter for built-in provider `{other}`"))
            })?;
            Arc::new(OpenAiProvider::new(service.config(key, base_url), executor))
        }
    })
}

/// Builds a client from `exllm.toml` (if any) and the process environment.
pub fn from_env() -> Result<ExLLM> {
    let env = Environment::from_process();
    let settings = Settings::load(None, &env)?;
    Ok(build(&settings)?.exllm)
}
