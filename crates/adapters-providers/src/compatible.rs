//! Groq and the OpenAI-compatible family, as data: each service is a base URL, a key variable
//! and the [`OpenAiQuirks`] that set it apart, all served by the one [`crate::OpenAiProvider`].
//!
//! ```
//! use exllm_adapters_providers::compatible;
//! use exllm_core::Secret;
//!
//! let groq = compatible::service("groq").unwrap();
//! assert_eq!(groq.api_key_env, Some("GROQ_API_KEY"));
//! let config = groq.config(Some(Secret::new("gsk_…")), None);
//! assert_eq!(config.url("chat/completions"), "https://api.groq.com/openai/v1/chat/completions");
//! ```
//!
//! A service that is not in [`SERVICES`] is described in `exllm.toml` and read into a
//! [`CompatibleSpec`]:
//!
//! ```toml
//! [providers.fireworks]
//! kind = "openai-compatible"
//! base_url = "https://api.fireworks.ai/inference/v1"
//! api_key_env = "FIREWORKS_API_KEY"
//! max_tokens_field = "max_tokens"
//! ```
//!
//! Base URLs and quirks are cited from each service's documentation (found through the docs
//! search) or from recorded fixtures (`fx:`, under `shared/fixtures/`).

use std::collections::BTreeMap;

use exllm_core::Secret;
use serde::Deserialize;

use crate::openai::{MaxTokensField, OpenAiConfig, OpenAiQuirks, ReasoningField, SeedField};

/// One known OpenAI-compatible service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompatibleService {
    /// The provider name in `provider/model` addresses (`groq`, `mistral`, …).
    pub name: &'static str,
    /// Other names the service answers to (`lm-studio`, `llama.cpp`, …).
    pub aliases: &'static [&'static str],
    /// The API root; `/chat/completions` is appended.
    pub base_url: &'static str,
    /// The variable holding the API key; `None` for local servers that need none.
    pub api_key_env: Option<&'static str>,
    /// The variable that overrides the base URL.
    pub base_url_env: &'static str,
    /// Headers sent with every request unless the user overrides them.
    pub headers: &'static [(&'static str, &'static str)],
    /// How the service departs from OpenAI.
    pub quirks: OpenAiQuirks,
}

impl CompatibleService {
    /// The configuration for this service: `base_url` (when given) replaces the default, and
    /// the default headers are set (override one with [`OpenAiConfig::set_header`]).
    pub fn config(&self, api_key: Option<Secret>, base_url: Option<String>) -> OpenAiConfig {
        let base = base_url
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| self.base_url.to_owned());
        self.headers.iter().fold(
            OpenAiConfig::compatible(self.name, base, api_key).quirks(self.quirks),
            |config, (name, value)| config.set_header(*name, *value),
        )
    }

    /// Whether the service needs an API key (hosted ones do, local servers do not).
    pub fn needs_key(&self) -> bool {
        self.api_key_env.is_some()
    }
}

/// OpenRouter's app-attribution defaults: `HTTP-Referer` identifies the app, `X-Title` names
/// it (openrouter.ai/docs/app-attribution; `X-Title` "is still supported for backwards
/// compatibility" next to the newer `X-OpenRouter-Title`).
pub const OPENROUTER_REFERER: &str = "https://github.com/exllm/exllm";
/// See [`OPENROUTER_REFERER`].
pub const OPENROUTER_TITLE: &str = "ExLLM";

/// Every known OpenAI-compatible service.
pub const SERVICES: &[CompatibleService] = &[
    // Base URL: fx groq/*.http.json request URIs; ai-sdk.dev Groq provider ("The default prefix
    // is https://api.groq.com/openai/v1"). Usage comes on the final chunk unasked
    // (fx: groq/vercel/stream-tool-call.chunks.jsonl) and the recorded streaming requests send
    // no `stream_options` (fx: groq/stream-*.request.json). `<think>` arrives inline with
    // `reasoning_format: "raw"` (fx: groq/chat-completion-reasoning-format-raw-think-tags.*).
    CompatibleService {
        name: "groq",
        aliases: &[],
        base_url: "https://api.groq.com/openai/v1",
        api_key_env: Some("GROQ_API_KEY"),
        base_url_env: "GROQ_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai().stream_usage(false).think_tags(true),
    },
    // Mistral's chat request names the token limit `max_tokens` and the seed `random_seed`
    // (Mistral's OpenAPI spec as generated into mistral-rouille's ChatCompletionRequest;
    // langchain MistralAIInput `maxTokens`/`randomSeed`). Its streams end with usage unasked,
    // and `stream_options` is not a field of its schema.
    CompatibleService {
        name: "mistral",
        aliases: &[],
        base_url: "https://api.mistral.ai/v1",
        api_key_env: Some("MISTRAL_API_KEY"),
        base_url_env: "EXLLM_MISTRAL_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai()
            .stream_usage(false)
            .max_tokens_field(MaxTokensField::MaxTokens)
            .seed_field(SeedField::RandomSeed),
    },
    // openrouter.ai/docs: base https://openrouter.ai/api/v1; app attribution headers; the
    // `reasoning` field in messages and deltas.
    CompatibleService {
        name: "openrouter",
        aliases: &[],
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: Some("OPENROUTER_API_KEY"),
        base_url_env: "EXLLM_OPENROUTER_BASE_URL",
        headers: &[
            ("HTTP-Referer", OPENROUTER_REFERER),
            ("X-Title", OPENROUTER_TITLE),
        ],
        quirks: OpenAiQuirks::openai(),
    },
    // docs.x.ai and the clients built on it (langchain-xai `https://api.x.ai/v1/`, RubyLLM).
    // grok-3-mini answers with `reasoning_content`, later models with none, so either field.
    CompatibleService {
        name: "xai",
        aliases: &["x-ai", "grok"],
        base_url: "https://api.x.ai/v1",
        api_key_env: Some("XAI_API_KEY"),
        base_url_env: "EXLLM_XAI_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai().reasoning_field(ReasoningField::Any),
    },
    // DeepSeek's docs (as quoted by pipecat: base_url "https://api.deepseek.com/v1"; the
    // reasoning-model guide): `max_tokens`, and `reasoning_content` "at the same level as
    // `content`", which must not be sent back (the adapter never sends reasoning back).
    CompatibleService {
        name: "deepseek",
        aliases: &[],
        base_url: "https://api.deepseek.com/v1",
        api_key_env: Some("DEEPSEEK_API_KEY"),
        base_url_env: "EXLLM_DEEPSEEK_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai()
            .max_tokens_field(MaxTokensField::MaxTokens)
            .reasoning_field(ReasoningField::ReasoningContent),
    },
    // Together's long-standing host (distilabel and camel default to it); its current
    // OpenAI-compatibility page shows https://api.together.ai/v1, which serves the same API.
    CompatibleService {
        name: "together",
        aliases: &["togetherai"],
        base_url: "https://api.together.xyz/v1",
        api_key_env: Some("TOGETHER_API_KEY"),
        base_url_env: "EXLLM_TOGETHER_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai()
            .max_tokens_field(MaxTokensField::MaxTokens)
            .reasoning_field(ReasoningField::Any),
    },
    // Perplexity: `POST https://api.perplexity.ai/chat/completions`, no `/v1`; `max_tokens`;
    // `citations` (and `search_results`) beside `choices`, kept in the metadata. Its
    // sonar-reasoning models write `<think>` into the content.
    CompatibleService {
        name: "perplexity",
        aliases: &["pplx"],
        base_url: "https://api.perplexity.ai",
        api_key_env: Some("PERPLEXITY_API_KEY"),
        base_url_env: "EXLLM_PERPLEXITY_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai()
            .stream_usage(false)
            .max_tokens_field(MaxTokensField::MaxTokens)
            .think_tags(true),
    },
    // lmstudio.ai/docs/api/openai-api: `http://localhost:1234/v1`, no key by default.
    CompatibleService {
        name: "lmstudio",
        aliases: &["lm-studio", "lm_studio"],
        base_url: "http://localhost:1234/v1",
        api_key_env: None,
        base_url_env: "EXLLM_LMSTUDIO_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai()
            .stream_usage(false)
            .max_tokens_field(MaxTokensField::MaxTokens)
            .reasoning_field(ReasoningField::Any),
    },
    // vLLM's OpenAI-compatible server listens on port 8000 under `/v1` and honours
    // `stream_options.include_usage`; its reasoning field was `reasoning_content`, newer
    // releases also say `reasoning`.
    CompatibleService {
        name: "vllm",
        aliases: &[],
        base_url: "http://localhost:8000/v1",
        api_key_env: None,
        base_url_env: "EXLLM_VLLM_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai()
            .max_tokens_field(MaxTokensField::MaxTokens)
            .reasoning_field(ReasoningField::Any),
    },
    // llama.cpp's llama-server: "The server will start on http://127.0.0.1:8080 by default",
    // OpenAI routes under `/v1`; `reasoning_content` with its deepseek reasoning format.
    CompatibleService {
        name: "llamacpp",
        aliases: &["llama.cpp", "llama-cpp", "llama-server"],
        base_url: "http://localhost:8080/v1",
        api_key_env: None,
        base_url_env: "EXLLM_LLAMACPP_BASE_URL",
        headers: &[],
        quirks: OpenAiQuirks::openai()
            .stream_usage(false)
            .max_tokens_field(MaxTokensField::MaxTokens)
            .reasoning_field(ReasoningField::Any),
    },
];

/// The known service called `name` (or one of its aliases), ignoring case.
pub fn service(name: &str) -> Option<&'static CompatibleService> {
    let name = name.trim();
    SERVICES.iter().find(|s| {
        s.name.eq_ignore_ascii_case(name) || s.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The names of every known service, for error messages listing them.
pub fn names() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|s| s.name)
}

/// A user-described OpenAI-compatible service, as written in `exllm.toml`
/// (`[providers.NAME] kind = "openai-compatible" …`).
///
/// Every quirk is optional and defaults to OpenAI's behaviour, or to the known service named
/// by `like` when given. Unknown keys (such as `kind`) are ignored, so the whole table can be
/// deserialized into this.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[non_exhaustive]
pub struct CompatibleSpec {
    /// The provider name; empty means the caller fills it in from the table key.
    #[serde(default)]
    pub name: String,
    /// The API root, e.g. `https://api.fireworks.ai/inference/v1`.
    pub base_url: String,
    /// The variable holding the API key; `None` for a server that needs none.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A known service whose quirks and headers to start from (`"groq"`, `"vllm"`, …).
    #[serde(default)]
    pub like: Option<String>,
    /// `"max_tokens"` or `"max_completion_tokens"`.
    #[serde(default)]
    pub max_tokens_field: Option<MaxTokensField>,
    /// Whether streaming requests send `stream_options.include_usage`.
    #[serde(default)]
    pub stream_usage: Option<bool>,
    /// `"seed"` or `"random_seed"`.
    #[serde(default)]
    pub seed_field: Option<SeedField>,
    /// `"reasoning"`, `"reasoning_content"` or `"any"`.
    #[serde(default)]
    pub reasoning_field: Option<ReasoningField>,
    /// Whether `<think>` tags at the start of content are reasoning.
    #[serde(default)]
    pub think_tags: Option<bool>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl CompatibleSpec {
    /// A spec for the service `name` at `base_url`, with OpenAI's quirks.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            ..Self::default()
        }
    }

    /// The quirks this spec describes: `like`'s (or OpenAI's), then each field set here.
    pub fn quirks(&self) -> OpenAiQuirks {
        let base = self
            .like
            .as_deref()
            .and_then(service)
            .map_or_else(OpenAiQuirks::openai, |s| s.quirks);
        let mut quirks = base;
        if let Some(field) = self.max_tokens_field {
            quirks = quirks.max_tokens_field(field);
        }
        if let Some(on) = self.stream_usage {
            quirks = quirks.stream_usage(on);
        }
        if let Some(field) = self.seed_field {
            quirks = quirks.seed_field(field);
        }
        if let Some(field) = self.reasoning_field {
            quirks = quirks.reasoning_field(field);
        }
        if let Some(on) = self.think_tags {
            quirks = quirks.think_tags(on);
        }
        quirks
    }

    /// The configuration for this service with `api_key` (read by the caller from
    /// [`CompatibleSpec::api_key_env`]).
    pub fn config(&self, api_key: Option<Secret>) -> OpenAiConfig {
        let like_headers = self
            .like
            .as_deref()
            .and_then(service)
            .map_or(&[][..], |s| s.headers);
        let config = OpenAiConfig::compatible(self.name.clone(), self.base_url.clone(), api_key)
            .quirks(self.quirks());
        let config = like_headers
            .iter()
            .fold(config, |c, (n, v)| c.set_header(*n, *v));
        self.headers
            .iter()
            .fold(config, |c, (n, v)| c.set_header(n.clone(), v.clone()))
    }
}
