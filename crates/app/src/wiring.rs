//! Wiring: turns [`Settings`] into an [`ExLLM`] with concrete adapters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use exllm_adapters_providers::anthropic::{AnthropicConfig, AnthropicProvider};
use exllm_adapters_providers::compatible;
use exllm_adapters_providers::gemini::{GeminiConfig, GeminiProvider};
use exllm_adapters_providers::ollama::{OllamaConfig, OllamaProvider};
use exllm_adapters_providers::{MockProvider, OpenAiConfig, OpenAiProvider};
use exllm_core::{
    CallOptions, Catalogue, ChatProvider, ContextSettings, Error, ExLLM, Middleware,
    RateLimitStore, ResponseCache, Result, Secret, UsageLedger,
};
use exllm_infrastructure::tokens::counter_for;
use exllm_infrastructure::{
    BreakerConfig, Cache, CacheConfig, CircuitBreaker, Fallback, FallbackConfig, FallbackTarget,
    HttpConfig, HttpExecutor, InMemoryRateLimitStore, Limits, MokaCache, RateLimit,
    RateLimitConfig, Retry, RetryConfig, TemperaturePolicy, Timeout, TimeoutConfig, UsageRecorder,
};

#[cfg(feature = "redis")]
use crate::lazy::LazyRedis;
use crate::lazy::LazyStores;

/// Redis as both a cache level and a rate-limit store, when `redis_url` is set.
#[cfg(feature = "redis")]
fn redis(settings: &Settings) -> Result<Option<Arc<LazyRedis>>> {
    Ok(settings
        .redis_url
        .as_ref()
        .map(|url| Arc::new(LazyRedis::new(url.clone()))))
}

/// This build has no Redis support: a configured `redis_url` is an error, not ignored.
#[cfg(not(feature = "redis"))]
fn redis(settings: &Settings) -> Result<Option<Arc<NoRedis>>> {
    match &settings.redis_url {
        Some(_) => Err(Error::config(
            "redis_url is set but this build of ExLLM has no Redis support (the `redis` feature)",
        )),
        None => Ok(None),
    }
}

/// Stands in for Redis in builds without it; never constructed.
#[cfg(not(feature = "redis"))]
#[derive(Debug)]
enum NoRedis {}

#[cfg(not(feature = "redis"))]
#[async_trait::async_trait]
impl ResponseCache for NoRedis {
    async fn get(&self, _key: &str) -> Result<Option<Vec<u8>>> {
        match *self {}
    }
    async fn put(&self, _key: &str, _value: Vec<u8>, _ttl: Duration) -> Result<()> {
        match *self {}
    }
}

#[cfg(not(feature = "redis"))]
#[async_trait::async_trait]
impl RateLimitStore for NoRedis {
    async fn acquire(
        &self,
        _key: &str,
        _amount: u64,
        _limit: u64,
        _window: Duration,
    ) -> Result<exllm_core::Acquire> {
        match *self {}
    }
}

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
    /// The usage ledger every call is recorded in, when one is configured.
    pub ledger: Option<Arc<dyn UsageLedger>>,
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

    let stores = Arc::new(LazyStores::new(settings.database_url()));
    let ledger: Arc<dyn UsageLedger> = stores.clone();
    let mut builder = ExLLM::builder()
        .provider(Arc::new(MockProvider::new()))
        .store(stores);
    let mut registered: BTreeMap<String, Arc<dyn ChatProvider>> = BTreeMap::new();
    registered.insert("mock".into(), Arc::new(MockProvider::new()));

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
        let provider = builtin(p.name, key, base_url, &executor)?;
        registered.insert(p.name.to_owned(), Arc::clone(&provider));
        builder = builder.provider(provider);
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
        let provider: Arc<dyn ChatProvider> =
            Arc::new(OpenAiProvider::new(config, executor.clone()));
        registered.insert(name.clone(), Arc::clone(&provider));
        builder = builder.provider(provider);
    }

    let mut catalogue = Catalogue::builtin().clone();
    if let Some(path) = &settings.catalogue {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read catalogue {}: {e}", path.display())))?;
        let overrides = Catalogue::from_json(&text)?;
        catalogue.merge(overrides.clone());
        builder = builder.catalogue(overrides);
    }

    for middleware in pipeline(
        settings,
        &registered,
        Arc::new(catalogue),
        Arc::clone(&ledger),
    )? {
        builder = builder.middleware(middleware);
    }
    builder = builder.context(ContextSettings {
        strategy: settings.context.strategy,
        reserve: settings.context.reserve_tokens,
        counter: Arc::new(|provider: &str, model: &str| counter_for(provider, model)),
    });

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
        ledger: Some(ledger),
    })
}

/// The middleware, outermost first (docs/middleware.md explains the order): Timeout → Cache →
/// RateLimit → Fallback → CircuitBreaker → Retry → UsageRecorder.
fn pipeline(
    settings: &Settings,
    providers: &BTreeMap<String, Arc<dyn ChatProvider>>,
    catalogue: Arc<Catalogue>,
    ledger: Arc<dyn UsageLedger>,
) -> Result<Vec<Arc<dyn Middleware>>> {
    let mut out: Vec<Arc<dyn Middleware>> = Vec::new();
    let redis = redis(settings)?;

    out.push(Arc::new(Timeout::new(TimeoutConfig {
        total: Some(Duration::from_secs(settings.http.timeout_secs)),
        idle: None,
    })));

    if settings.cache.enabled {
        let mut levels: Vec<Arc<dyn ResponseCache>> =
            vec![Arc::new(MokaCache::new(settings.cache.max_bytes))];
        if let Some(redis) = &redis {
            levels.push(redis.clone());
        }
        let policy = if settings.cache.cache_sampled {
            TemperaturePolicy::Always
        } else {
            TemperaturePolicy::Deterministic
        };
        let config = CacheConfig::new()
            .ttl(Duration::from_secs(settings.cache.ttl_secs))
            .temperature(policy);
        out.push(Arc::new(Cache::new(levels, config)));
    }

    let limits = &settings.limits;
    if !limits.providers.is_empty() || limits.per_caller.is_some() {
        let to_limits = |v: &crate::config::LimitValues| {
            let mut l = Limits::new();
            if let Some(n) = v.requests_per_minute {
                l = l.requests_per_minute(n);
            }
            if let Some(n) = v.tokens_per_minute {
                l = l.tokens_per_minute(n);
            }
            l
        };
        let mut config = RateLimitConfig::new();
        for (provider, values) in &limits.providers {
            config = config.provider(provider.clone(), to_limits(values));
        }
        if let Some(values) = &limits.per_caller {
            config = config.per_caller(to_limits(values));
        }
        config = match limits.mode.as_deref() {
            Some("wait") => config.wait(Duration::from_secs(limits.max_wait_secs.unwrap_or(30))),
            _ => config.fail_fast(),
        };
        let store: Arc<dyn RateLimitStore> = match &redis {
            Some(redis) => redis.clone(),
            None => Arc::new(InMemoryRateLimitStore::new()),
        };
        out.push(Arc::new(RateLimit::new(store, config)?));
    }

    for (primary, targets) in &settings.fallbacks {
        let mut resolved = Vec::new();
        for target in targets {
            let address = exllm_core::ModelAddress::parse(target)?;
            let provider = providers.get(&address.provider).ok_or_else(|| {
                Error::config(format!(
                    "fallbacks.\"{primary}\": provider `{}` is not configured",
                    address.provider
                ))
            })?;
            resolved.push(FallbackTarget::new(Arc::clone(provider), address.model));
        }
        out.push(Arc::new(Fallback::new(FallbackConfig {
            targets: resolved,
            primaries: vec![primary.clone()],
            catalogue: Some(Arc::clone(&catalogue)),
        })));
    }

    if settings.breaker.enabled {
        out.push(Arc::new(CircuitBreaker::new(BreakerConfig {
            failure_threshold: settings.breaker.failure_threshold,
            cool_down: Duration::from_secs(settings.breaker.cool_down_secs),
            per_model: settings.breaker.per_model,
            ..BreakerConfig::default()
        })));
    }

    let mut retry = RetryConfig::default();
    retry.max_retries = settings.retry.max_retries;
    retry.max_wait = Duration::from_secs(settings.retry.max_wait_secs);
    out.push(Arc::new(Retry::new(retry)));

    out.push(Arc::new(UsageRecorder::new(ledger)));
    Ok(out)
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
