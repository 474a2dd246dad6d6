//! Settings: `exllm.toml` plus the environment, checked with every problem reported at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use exllm_adapters_providers::CompatibleSpec;
use exllm_core::{Error, ModelAddress, Result, Secret};
use serde::Deserialize;
use serde_json::Value;

/// The environment ExLLM reads, captured once so that loading is a pure function of it.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are never printed: several of them are keys.
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Environment")
            .field("names", &names)
            .finish()
    }
}

impl Environment {
    /// The process environment. All of it is kept: a user's `exllm.toml` may name any variable
    /// as a key variable (`api_key_env`). `Debug` prints names only.
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// An environment from explicit pairs (tests, embedding).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            vars: vars.into_iter().collect(),
        }
    }

    /// The value of `name`, when set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// A built-in provider and where its key and endpoint come from (DESIGN §5).
#[derive(Debug, Clone)]
pub struct ProviderEnv {
    /// The provider name.
    pub name: &'static str,
    /// The key variables, first set wins; empty when the provider needs no key.
    pub key_vars: Vec<&'static str>,
    /// A key variable that is used when set but not required (Ollama's hosted API).
    pub optional_key_var: Option<&'static str>,
    /// The base-URL (or host) variable.
    pub base_url_var: &'static str,
    /// The model `exllm chat` uses when this is the first configured provider.
    pub default_model: Option<&'static str>,
}

impl ProviderEnv {
    /// Whether the provider cannot work without a key.
    pub fn needs_key(&self) -> bool {
        !self.key_vars.is_empty()
    }
}

/// Every built-in provider, in the order `exllm chat` picks a default from: the native wire
/// formats first, then the OpenAI-compatible family.
pub fn builtin_providers() -> Vec<ProviderEnv> {
    let mut out = vec![
        ProviderEnv {
            name: "openai",
            key_vars: vec!["OPENAI_API_KEY"],
            optional_key_var: None,
            base_url_var: "OPENAI_BASE_URL",
            default_model: Some("gpt-4o-mini"),
        },
        ProviderEnv {
            name: "anthropic",
            key_vars: vec!["ANTHROPIC_API_KEY"],
            optional_key_var: None,
            base_url_var: "ANTHROPIC_BASE_URL",
            default_model: Some("claude-sonnet-4-5"),
        },
        ProviderEnv {
            name: "gemini",
            key_vars: vec!["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            optional_key_var: None,
            base_url_var: "GEMINI_BASE_URL",
            default_model: Some("gemini-2.5-flash"),
        },
    ];
    for service in exllm_adapters_providers::compatible::SERVICES {
        out.push(ProviderEnv {
            name: service.name,
            key_vars: service.api_key_env.into_iter().collect(),
            optional_key_var: None,
            base_url_var: service.base_url_env,
            default_model: match service.name {
                "groq" => Some("llama-3.3-70b-versatile"),
                "mistral" => Some("mistral-small-latest"),
                "deepseek" => Some("deepseek-chat"),
                "xai" => Some("grok-4"),
                "openrouter" => Some("openai/gpt-4o-mini"),
                "perplexity" => Some("sonar"),
                _ => None,
            },
        });
    }
    out.push(ProviderEnv {
        name: "ollama",
        key_vars: Vec::new(),
        optional_key_var: Some("OLLAMA_API_KEY"),
        base_url_var: "OLLAMA_HOST",
        default_model: None,
    });
    out
}

/// The `kind` of a user-defined provider in `exllm.toml`.
pub const COMPATIBLE_KIND: &str = "openai-compatible";

/// The settings of one provider.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProviderSettings {
    /// The API key (prefer the provider's environment variable over the file).
    #[serde(deserialize_with = "secret_opt")]
    pub api_key: Option<Secret>,
    /// The base URL.
    pub base_url: Option<String>,
    /// `openai-compatible` for a service defined by the user; absent for built-in providers.
    pub kind: Option<String>,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("base_url", &self.base_url)
            .field("kind", &self.kind)
            .finish()
    }
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

/// Defaults applied to every call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CallDefaults {
    /// Temperature.
    pub temperature: Option<f32>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
}

/// HTTP timeouts, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Connect timeout.
    pub connect_timeout_secs: u64,
    /// Total timeout of a non-streaming call.
    pub timeout_secs: u64,
    /// Longest silence allowed between two chunks of a stream.
    pub idle_timeout_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout_secs: 10,
            timeout_secs: 600,
            idle_timeout_secs: 120,
        }
    }
}

/// Everything ExLLM reads from `exllm.toml` and the environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The model used when a call names none (`EXLLM_DEFAULT_MODEL`).
    pub default_model: Option<String>,
    /// Call defaults.
    pub defaults: CallDefaults,
    /// HTTP timeouts.
    pub http: HttpSettings,
    /// Per-provider settings, by provider name.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Model aliases: name → `provider/model`.
    pub aliases: BTreeMap<String, String>,
    /// A catalogue file whose models and prices override the built-in ones.
    pub catalogue: Option<PathBuf>,
    /// Where conversations and the usage ledger live (`EXLLM_DATABASE_URL`): `sqlite://path`,
    /// `sqlite::memory:`, `postgres://…` or `memory://`. Default: an SQLite file in the user's
    /// data directory.
    pub database_url: Option<String>,
    /// Redis for the shared cache and rate limits (`EXLLM_REDIS_URL`).
    pub redis_url: Option<String>,
    /// The address `exllm serve` listens on (`EXLLM_BIND`); default `127.0.0.1:4000`.
    pub bind: Option<String>,
    /// The gateway's master key (`EXLLM_MASTER_KEY`): admin access, and keys required on
    /// every call. Never printed (`Secret`).
    #[serde(deserialize_with = "secret_opt")]
    pub master_key: Option<Secret>,
    /// Fitting conversation histories to context windows.
    pub context: ContextSection,
    /// Retries.
    pub retry: RetrySection,
    /// Circuit breakers.
    pub breaker: BreakerSection,
    /// The response cache.
    pub cache: CacheSection,
    /// Rate limits.
    pub limits: LimitsSection,
    /// Fallbacks: a primary `provider/model` → the targets tried after it, in order.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// User-defined OpenAI-compatible services (`kind = "openai-compatible"`), by name.
    #[serde(skip)]
    pub compatible: BTreeMap<String, CompatibleSpec>,
    /// The file the settings came from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// ExLLM's data directory (`$XDG_DATA_HOME/exllm`, or the platform's equivalent).
    #[serde(skip)]
    pub data_dir: PathBuf,
}

/// `[context]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ContextSection {
    /// `sliding_window` (default), `keep_system_and_newest` or `none`.
    pub strategy: exllm_core::context::ContextStrategy,
    /// Tokens kept free for what counting only estimates.
    pub reserve_tokens: u64,
}

impl Default for ContextSection {
    fn default() -> Self {
        Self {
            strategy: exllm_core::context::ContextStrategy::default(),
            reserve_tokens: 256,
        }
    }
}

/// `[retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetrySection {
    /// Retries after the first attempt (0 turns retries off).
    pub max_retries: u32,
    /// The longest `retry-after` honoured; longer waits give up at once.
    pub max_wait_secs: u64,
}

impl Default for RetrySection {
    fn default() -> Self {
        Self {
            max_retries: 2,
            max_wait_secs: 60,
        }
    }
}

/// `[breaker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BreakerSection {
    /// Whether circuit breakers are on.
    pub enabled: bool,
    /// Consecutive failures that open a circuit.
    pub failure_threshold: u32,
    /// How long a circuit stays open before a probe.
    pub cool_down_secs: u64,
    /// One circuit per model rather than per provider.
    pub per_model: bool,
}

impl Default for BreakerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            cool_down_secs: 30,
            per_model: false,
        }
    }
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheSection {
    /// Whether replies are cached.
    pub enabled: bool,
    /// How long a reply stays cached.
    pub ttl_secs: u64,
    /// The in-process cache's size bound.
    pub max_bytes: u64,
    /// Also cache requests with temperature above zero.
    pub cache_sampled: bool,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl_secs: 3600,
            max_bytes: 64 * 1024 * 1024,
            cache_sampled: false,
        }
    }
}

/// Requests and tokens per minute.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct LimitValues {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LimitsSection {
    /// `fail_fast` (default) or `wait`.
    pub mode: Option<String>,
    /// The longest a call waits for capacity in `wait` mode.
    pub max_wait_secs: Option<u64>,
    /// Per-provider limits, by provider name.
    pub providers: BTreeMap<String, LimitValues>,
    /// The default limit of each caller key.
    pub per_caller: Option<LimitValues>,
}

/// `EXLLM_*` variables that are not settings.
const NOT_SETTINGS: &[&str] = &["EXLLM_CONFIG", "EXLLM_LOG"];

const TOP_LEVEL_KEYS: &[&str] = &[
    "default_model",
    "defaults",
    "http",
    "providers",
    "aliases",
    "catalogue",
    "database_url",
    "redis_url",
    "bind",
    "master_key",
    "context",
    "retry",
    "breaker",
    "cache",
    "limits",
    "fallbacks",
];

/// The top-level keys whose value is a table.
const TABLE_KEYS: &[&str] = &[
    "defaults",
    "http",
    "providers",
    "aliases",
    "context",
    "retry",
    "breaker",
    "cache",
    "limits",
    "fallbacks",
];

impl Settings {
    /// Loads settings: the file (`explicit`, else `EXLLM_CONFIG`, else `./exllm.toml` when it
    /// exists), then `EXLLM_*` variables, then the providers' standard variables. Every problem
    /// is reported at once in one config error.
    pub fn load(explicit: Option<&Path>, env: &Environment) -> Result<Settings> {
        let (settings, problems) = Self::load_checked(explicit, env);
        match (settings, problems.is_empty()) {
            (Some(settings), true) => Ok(settings),
            _ => Err(Error::config(format!(
                "invalid configuration:\n  - {}",
                problems.join("\n  - ")
            ))),
        }
    }

    /// Loads settings and returns them (when they could be read at all) with every problem
    /// found. `exllm config check` prints the problems.
    pub fn load_checked(
        explicit: Option<&Path>,
        env: &Environment,
    ) -> (Option<Settings>, Vec<String>) {
        let mut problems = Vec::new();
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(|| env.get("EXLLM_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let local = PathBuf::from("exllm.toml");
                local.exists().then_some(local)
            });

        let mut builder = config::Config::builder();
        if let Some(path) = &path {
            if !path.exists() {
                problems.push(format!("config file {} does not exist", path.display()));
            } else {
                builder = builder.add_source(
                    config::File::from(path.as_path())
                        .format(config::FileFormat::Toml)
                        .required(true),
                );
            }
        }
        // The family's `EXLLM_<NAME>_BASE_URL` variables are provider endpoints, read below, not
        // settings keys.
        let builtins = builtin_providers();
        let base_url_vars: Vec<&str> = builtins.iter().map(|p| p.base_url_var).collect();
        let exllm_vars: HashMap<String, String> = env
            .vars
            .iter()
            .filter(|(k, _)| {
                k.starts_with("EXLLM_")
                    && !NOT_SETTINGS.contains(&k.as_str())
                    && !base_url_vars.contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("EXLLM")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(exllm_vars)),
        );

        let raw: Value = match builder.build().and_then(|c| c.try_deserialize::<Value>()) {
            Ok(raw) => raw,
            Err(err) => {
                problems.push(format!("cannot read configuration: {err}"));
                return (None, problems);
            }
        };
        check_shape(&raw, &mut problems);
        let compatible = compatible_specs(&raw, &mut problems);

        let mut settings: Settings = match serde_json::from_value(raw) {
            Ok(s) => s,
            Err(err) => {
                if problems.is_empty() {
                    problems.push(format!("configuration has a wrong type: {err}"));
                }
                return (None, problems);
            }
        };
        settings.source = path;
        settings.compatible = compatible;
        settings.data_dir = data_dir(env);

        // The providers' standard variables win over the file: they are how keys are meant
        // to be given (DESIGN §5).
        for p in builtin_providers() {
            let key = p
                .key_vars
                .iter()
                .chain(p.optional_key_var.iter())
                .find_map(|var| env.get(var));
            let url = env.get(p.base_url_var);
            if key.is_none() && url.is_none() && !settings.providers.contains_key(p.name) {
                continue;
            }
            let entry = settings.providers.entry(p.name.to_owned()).or_default();
            if let Some(key) = key {
                entry.api_key = Some(Secret::new(key));
            }
            if let Some(url) = url {
                entry.base_url = Some(url.to_owned());
            }
        }
        for (name, spec) in &settings.compatible {
            if let Some(var) = &spec.api_key_env
                && let Some(key) = env.get(var)
            {
                settings.providers.entry(name.clone()).or_default().api_key =
                    Some(Secret::new(key));
            }
        }
        settings.check_values(&mut problems);
        (Some(settings), problems)
    }

    fn check_values(&self, problems: &mut Vec<String>) {
        if let Some(model) = &self.default_model
            && let Err(err) = ModelAddress::parse(model)
            && !self.aliases.contains_key(model)
        {
            problems.push(format!("default_model: {}", err.message()));
        }
        if let Some(t) = self.defaults.temperature
            && !(0.0..=2.0).contains(&t)
        {
            problems.push(format!(
                "defaults.temperature must be between 0 and 2, got {t}"
            ));
        }
        if self.defaults.max_tokens == Some(0) {
            problems.push("defaults.max_tokens must be at least 1".to_owned());
        }
        for (name, value) in [
            ("http.connect_timeout_secs", self.http.connect_timeout_secs),
            ("http.timeout_secs", self.http.timeout_secs),
            ("http.idle_timeout_secs", self.http.idle_timeout_secs),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1 second"));
            }
        }
        let builtins = builtin_providers();
        for (name, provider) in &self.providers {
            let user_defined = provider.kind.as_deref() == Some(COMPATIBLE_KIND);
            if !user_defined && !builtins.iter().any(|p| p.name == name) {
                let known: Vec<&str> = builtins.iter().map(|p| p.name).collect();
                problems.push(format!(
                    "providers.{name}: unknown provider (known: {}); to add an OpenAI-compatible service set kind = \"{COMPATIBLE_KIND}\" and base_url",
                    known.join(", ")
                ));
            }
            if let Some(kind) = &provider.kind
                && kind != COMPATIBLE_KIND
            {
                problems.push(format!(
                    "providers.{name}.kind must be \"{COMPATIBLE_KIND}\", got \"{kind}\""
                ));
            }
            if let Some(url) = &provider.base_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                problems.push(format!(
                    "providers.{name}.base_url must start with http:// or https://, got `{url}`"
                ));
            }
        }
        for (alias, target) in &self.aliases {
            if let Err(err) = ModelAddress::parse(target) {
                problems.push(format!("aliases.{alias}: {}", err.message()));
            }
        }
        if let Some(path) = &self.catalogue
            && !path.exists()
        {
            problems.push(format!("catalogue file {} does not exist", path.display()));
        }
    }

    /// The store URL: `database_url` / `EXLLM_DATABASE_URL`, else an SQLite file in the user's
    /// data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            // Without the SQLite store compiled in, conversations live in memory.
            None if cfg!(not(feature = "sqlite")) => "memory://".to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("exllm.db").display()),
        }
    }

    /// The settings of `provider`, when any.
    pub fn provider(&self, name: &str) -> Option<&ProviderSettings> {
        self.providers.get(name)
    }
}

/// Reports unknown keys and wrong types before typed deserialization, so that all of them are
/// listed rather than only the first.
fn check_shape(raw: &Value, problems: &mut Vec<String>) {
    let Some(table) = raw.as_object() else {
        problems.push("the configuration is not a table".to_owned());
        return;
    };
    for (key, value) in table {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            problems.push(format!(
                "unknown key `{key}` (known keys: {})",
                TOP_LEVEL_KEYS.join(", ")
            ));
            continue;
        }
        let expect_table = TABLE_KEYS.contains(&key.as_str());
        if expect_table && !value.is_object() {
            problems.push(format!("`{key}` must be a table"));
        }
        if !expect_table && !value.is_string() {
            problems.push(format!("`{key}` must be a string"));
        }
    }
    let check_fields =
        |section: &str, known: &[&str], numeric: bool, problems: &mut Vec<String>| {
            if let Some(obj) = table.get(section).and_then(Value::as_object) {
                for (k, v) in obj {
                    if !known.contains(&k.as_str()) {
                        problems.push(format!(
                            "unknown key `{section}.{k}` (known: {})",
                            known.join(", ")
                        ));
                    } else if numeric && !v.is_number() {
                        problems.push(format!("`{section}.{k}` must be a number, got {v}"));
                    }
                }
            }
        };
    check_fields("defaults", &["temperature", "max_tokens"], true, problems);
    check_fields("retry", &["max_retries", "max_wait_secs"], true, problems);
    check_fields(
        "breaker",
        &[
            "enabled",
            "failure_threshold",
            "cool_down_secs",
            "per_model",
        ],
        false,
        problems,
    );
    check_fields(
        "cache",
        &["enabled", "ttl_secs", "max_bytes", "cache_sampled"],
        false,
        problems,
    );
    check_fields("context", &["strategy", "reserve_tokens"], false, problems);
    check_fields(
        "limits",
        &["mode", "max_wait_secs", "providers", "per_caller"],
        false,
        problems,
    );
    if let Some(strategy) = table
        .get("context")
        .and_then(|c| c.get("strategy"))
        .and_then(Value::as_str)
        && strategy
            .parse::<exllm_core::context::ContextStrategy>()
            .is_err()
    {
        problems.push(format!(
            "context.strategy must be sliding_window, keep_system_and_newest or none, got `{strategy}`"
        ));
    }
    if let Some(mode) = table
        .get("limits")
        .and_then(|l| l.get("mode"))
        .and_then(Value::as_str)
        && !["fail_fast", "wait"].contains(&mode)
    {
        problems.push(format!(
            "limits.mode must be fail_fast or wait, got `{mode}`"
        ));
    }
    if let Some(fallbacks) = table.get("fallbacks").and_then(Value::as_object) {
        for (primary, targets) in fallbacks {
            let ok = targets.as_array().is_some_and(|t| {
                t.iter()
                    .all(|v| v.as_str().is_some_and(|s| s.contains('/')))
            });
            if !ok {
                problems.push(format!(
                    "fallbacks.\"{primary}\" must be a list of provider/model strings"
                ));
            }
        }
    }
    check_fields(
        "http",
        &["connect_timeout_secs", "timeout_secs", "idle_timeout_secs"],
        true,
        problems,
    );
    if let Some(providers) = table.get("providers").and_then(Value::as_object) {
        for (name, p) in providers {
            match p.as_object() {
                Some(fields) => {
                    let user_defined =
                        fields.get("kind").and_then(Value::as_str) == Some(COMPATIBLE_KIND);
                    let known: &[&str] = if user_defined {
                        COMPATIBLE_KEYS
                    } else {
                        &["api_key", "base_url", "kind"]
                    };
                    for (k, v) in fields {
                        if !known.contains(&k.as_str()) {
                            problems.push(format!(
                                "unknown key `providers.{name}.{k}` (known: {})",
                                known.join(", ")
                            ));
                        } else if ["api_key", "base_url", "kind", "api_key_env"]
                            .contains(&k.as_str())
                            && !v.is_string()
                        {
                            problems.push(format!("`providers.{name}.{k}` must be a string"));
                        }
                    }
                }
                None => problems.push(format!("`providers.{name}` must be a table")),
            }
        }
    }
    if let Some(aliases) = table.get("aliases").and_then(Value::as_object) {
        for (name, target) in aliases {
            if !target.is_string() {
                problems.push(format!(
                    "`aliases.{name}` must be a string like \"openai/gpt-4o-mini\""
                ));
            }
        }
    }
}

/// The keys of a user-defined OpenAI-compatible service (`CompatibleSpec` plus `kind` and
/// `api_key`).
const COMPATIBLE_KEYS: &[&str] = &[
    "kind",
    "api_key",
    "base_url",
    "api_key_env",
    "like",
    "max_tokens_field",
    "stream_usage",
    "seed_field",
    "reasoning_field",
    "think_tags",
    "headers",
];

/// The user-defined OpenAI-compatible services of the raw settings, each problem reported.
fn compatible_specs(raw: &Value, problems: &mut Vec<String>) -> BTreeMap<String, CompatibleSpec> {
    let mut out = BTreeMap::new();
    let Some(providers) = raw.get("providers").and_then(Value::as_object) else {
        return out;
    };
    for (name, table) in providers {
        if table.get("kind").and_then(Value::as_str) != Some(COMPATIBLE_KIND) {
            continue;
        }
        if table.get("base_url").and_then(Value::as_str).is_none() {
            problems.push(format!(
                "providers.{name}: an {COMPATIBLE_KIND} provider needs base_url"
            ));
            continue;
        }
        let mut fields = table.clone();
        if let Some(obj) = fields.as_object_mut() {
            // Keys the spec does not describe; `api_key` is read separately as a secret.
            obj.remove("kind");
            obj.remove("api_key");
        }
        match serde_json::from_value::<CompatibleSpec>(fields) {
            Ok(mut spec) => {
                spec.name.clone_from(name);
                if let Some(like) = &spec.like
                    && exllm_adapters_providers::compatible::service(like).is_none()
                {
                    let known: Vec<&str> = exllm_adapters_providers::compatible::names().collect();
                    problems.push(format!(
                        "providers.{name}.like: unknown service `{like}` (known: {})",
                        known.join(", ")
                    ));
                }
                out.insert(name.clone(), spec);
            }
            Err(err) => problems.push(format!("providers.{name}: {err}")),
        }
    }
    out
}

/// `$XDG_DATA_HOME/exllm`, else `$HOME/.local/share/exllm` on Unix, else the platform's data
/// directory, else `./.exllm`.
fn data_dir(env: &Environment) -> PathBuf {
    if let Some(xdg) = env.get("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("exllm");
    }
    if cfg!(target_os = "linux")
        && let Some(home) = env.get("HOME")
    {
        return PathBuf::from(home).join(".local/share/exllm");
    }
    dirs::data_dir()
        .map(|d| d.join("exllm"))
        .unwrap_or_else(|| PathBuf::from(".exllm"))
}
