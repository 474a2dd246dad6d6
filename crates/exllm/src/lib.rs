//! # ExLLM
//!
//! One Rust API over every LLM provider, with streaming, tool calls, vision, conversations and
//! exact cost tracking.
//!
//! ```no_run
//! use exllm::prelude::*;
//!
//! # async fn run() -> exllm::Result<()> {
//! // Keys and endpoints from the standard variables (OPENAI_API_KEY, …).
//! let exllm = ExLLM::from_env()?;
//! let reply = exllm.chat("openai/gpt-4o-mini", "Say hi in five words").await?;
//! println!("{} (cost: {:?})", reply.text(), reply.cost.map(|c| c.total_usd));
//! # Ok(()) }
//! ```
//!
//! Streaming yields events as they arrive and ends with the complete response:
//!
//! ```
//! use std::sync::Arc;
//! use exllm::prelude::*;
//! use exllm::testing::MockProvider;
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> exllm::Result<()> {
//! let exllm = ExLLM::builder()
//!     .provider(Arc::new(MockProvider::new().reply("Hello from the mock")))
//!     .build();
//! let mut stream = exllm.stream("mock/echo", "Hi").await?;
//! let mut text = String::new();
//! while let Some(event) = stream.next().await {
//!     match event? {
//!         StreamEvent::TextDelta(delta) => text.push_str(&delta),
//!         StreamEvent::Done(response) => assert_eq!(response.text(), text),
//!         _ => {}
//!     }
//! }
//! assert_eq!(text, "Hello from the mock");
//! # Ok(()) }
//! ```
//!
//! The crates behind this one: `exllm-core` (domain, ports, facade), `exllm-adapters-providers`
//! (wire formats), `exllm-adapters-persistence` (stores), `exllm-infrastructure` (HTTP, stream
//! framing) and `exllm-app` (configuration, the `exllm` binary).

pub use exllm_core::*;

/// `ExLLM::from_env()`: configuration from `exllm.toml` and the environment.
pub use exllm_app::FromEnv;

/// Provider adapters, for building clients by hand.
pub mod providers {
    #[cfg(feature = "anthropic")]
    pub use exllm_adapters_providers::{AnthropicConfig, AnthropicProvider};
    #[cfg(feature = "compatible")]
    pub use exllm_adapters_providers::{CompatibleService, CompatibleSpec, compatible};
    #[cfg(feature = "gemini")]
    pub use exllm_adapters_providers::{GeminiConfig, GeminiProvider};
    #[cfg(feature = "ollama")]
    pub use exllm_adapters_providers::{OllamaConfig, OllamaProvider};
    #[cfg(feature = "openai")]
    pub use exllm_adapters_providers::{OpenAiConfig, OpenAiProvider, OpenAiQuirks};
}

/// Test doubles for your own tests, and (feature `testing`) the conformance suite that proves
/// a provider against recorded wire data.
pub mod testing {
    #[cfg(feature = "testing")]
    pub use exllm_adapters_providers::conformance;
    pub use exllm_adapters_providers::{MockProvider, MockReply};
}

/// Conversation stores and usage ledgers: in memory, SQLite, PostgreSQL, chosen by URL.
pub mod persistence {
    #[cfg(feature = "postgres")]
    pub use exllm_adapters_persistence::PostgresStore;
    #[cfg(feature = "sqlite")]
    pub use exllm_adapters_persistence::SqliteStore;
    pub use exllm_adapters_persistence::{InMemoryStore, Stores, open};
}

/// The built-in middleware (docs/middleware.md gives the order and defaults).
pub mod middleware {
    #[cfg(feature = "redis")]
    pub use exllm_infrastructure::redis::{RedisCache, RedisConnection, RedisRateLimitStore};
    pub use exllm_infrastructure::{
        BreakerConfig, Cache, CacheConfig, CircuitBreaker, Fallback, FallbackConfig,
        FallbackTarget, InMemoryRateLimitStore, Limits, MokaCache, RateLimit, RateLimitConfig,
        Retry, RetryConfig, TemperaturePolicy, Timeout, TimeoutConfig, UsageRecorder,
    };
}

/// Exact token counting for OpenAI-family encodings.
pub mod tokens {
    pub use exllm_infrastructure::tokens::{TiktokenCounter, counter_for};
}

/// The HTTP executor every provider shares.
pub mod http {
    pub use exllm_infrastructure::{HttpConfig, HttpExecutor};
}

/// The names most programs need.
pub mod prelude {
    pub use crate::FromEnv;
    pub use exllm_core::{
        CallOptions, ChatRequest, ChatResponse, ContentPart, Error, ErrorKind, ExLLM, Message,
        Result, Role, StreamEvent, ToolCall, ToolDefinition,
    };
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
