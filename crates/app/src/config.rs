//! Settings: `exllm.toml` plus the environment, checked with every problem reported at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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
    /// The process environment (only the variables ExLLM knows; nothing else is kept).
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// An environment from explicit pairs (tests, embedding).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            vars: vars
                .into_iter()
                .filter(|(k, _)| is_known_variable(k))
                .collect(),
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

fn is_known_variable(name: &str) -> bool {
    name.starts_with("EXLLM_")
        || PROVIDER_ENV
            .iter()
            .any(|p| p.key_var == name || p.base_url_var == name)
}

/// Where a built-in provider takes its key and endpoint from (DESIGN §5).
#[derive(Debug, Clone, Copy)]
pub struct ProviderEnv {
    /// The provider name.
    pub name: &'static str,
    /// The key variable.
    pub key_var: &'static str,
    /// The base-URL variable.
    pub base_url_var: &'static str,
    /// The default base URL.
    pub default_base_url: &'static str,
}

/// The providers this build can talk to, and their variables.
pub const PROVIDER_ENV: &[ProviderEnv] = &[ProviderEnv {
    name: "openai",
    key_var: "OPENAI_API_KEY",
    base_url_var: "OPENAI_BASE_URL",
    default_base_url: "https://api.openai.com/v1",
}];

/// The settings of one provider.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProviderSettings {
    /// The API key (prefer the provider's environment variable over the file).
    #[serde(deserialize_with = "secret_opt")]
    pub api_key: Option<Secret>,
    /// The base URL.
    pub base_url: Option<String>,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("base_url", &self.base_url)
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
    /// The file the settings came from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "default_model",
    "defaults",
    "http",
    "providers",
    "aliases",
    "catalogue",
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
        let exllm_vars: HashMap<String, String> = env
            .vars
            .iter()
            .filter(|(k, _)| {
                k.starts_with("EXLLM_") && k.as_str() != "EXLLM_CONFIG" && k.as_str() != "EXLLM_LOG"
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

        // The providers' standard variables win over the file: they are how keys are meant
        // to be given (DESIGN §5).
        for p in PROVIDER_ENV {
            let entry = settings.providers.entry(p.name.to_owned()).or_default();
            if let Some(key) = env.get(p.key_var) {
                entry.api_key = Some(Secret::new(key));
            }
            if let Some(url) = env.get(p.base_url_var) {
                entry.base_url = Some(url.to_owned());
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
        for (name, provider) in &self.providers {
            if !PROVIDER_ENV.iter().any(|p| p.name == name) {
                let known: Vec<&str> = PROVIDER_ENV.iter().map(|p| p.name).collect();
                problems.push(format!(
                    "providers.{name}: unknown provider; known providers: {}",
                    known.join(", ")
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
        let expect_table = matches!(key.as_str(), "defaults" | "http" | "providers" | "aliases");
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
                    for (k, v) in fields {
                        if !["api_key", "base_url"].contains(&k.as_str()) {
                            problems.push(format!(
                                "unknown key `providers.{name}.{k}` (known: api_key, base_url)"
                            ));
                        } else if !v.is_string() {
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
