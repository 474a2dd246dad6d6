//! Wiring: turns [`Settings`] into an [`ExLLM`] with concrete adapters.

use std::sync::Arc;
use std::time::Duration;

use exllm_adapters_persistence::InMemoryStore;
use exllm_adapters_providers::{MockProvider, OpenAiConfig, OpenAiProvider};
use exllm_core::{CallOptions, Catalogue, Error, ExLLM, Result};
use exllm_infrastructure::{HttpConfig, HttpExecutor};

use crate::config::{Environment, PROVIDER_ENV, Settings};

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
    let mut first_configured = None;
    for p in PROVIDER_ENV {
        let provider = settings.provider(p.name);
        let key = provider.and_then(|s| s.api_key.clone());
        let Some(key) = key else {
            unconfigured.push((p.name, p.key_var));
            continue;
        };
        let base_url = provider.and_then(|s| s.base_url.clone());
        if p.name == "openai" {
            let config = OpenAiConfig::openai(Some(key), base_url);
            builder = builder.provider(Arc::new(OpenAiProvider::new(config, executor.clone())));
        }
        first_configured.get_or_insert(p.name);
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
        (None, Some("openai")) => ("openai/gpt-4o-mini".to_owned(), false),
        (None, _) => (MOCK_MODEL.to_owned(), true),
    };
    builder = builder.default_model(default_model);

    Ok(Wired {
        exllm: builder.build(),
        unconfigured,
        mock_fallback,
    })
}

/// Builds a client from `exllm.toml` (if any) and the process environment.
pub fn from_env() -> Result<ExLLM> {
    let env = Environment::from_process();
    let settings = Settings::load(None, &env)?;
    Ok(build(&settings)?.exllm)
}
