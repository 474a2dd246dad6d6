//! ExLLM's provider adapters: one module per wire format, plus the `mock` provider.
//!
//! An adapter is translation only: a [`exllm_core::ChatRequest`] becomes an HTTP request, and a
//! body or stream of events becomes [`exllm_core::ChatResponse`] or
//! [`exllm_core::StreamEvent`]s. Sending, status handling, retries and error mapping live once
//! in `exllm-infrastructure`'s `HttpExecutor`.
//!
//! - [`openai`]: OpenAI Chat Completions, and through [`OpenAiConfig`] every OpenAI-compatible
//!   service (Groq, Mistral, DeepSeek, OpenRouter, vLLM, …) as data.
//! - [`mock`]: [`MockProvider`], scripted and recording, for tests and demos.

#[cfg(feature = "anthropic")]
pub mod anthropic;
#[cfg(feature = "compatible")]
pub mod compatible;
#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "gemini")]
pub mod gemini;
pub mod mock;
#[cfg(feature = "ollama")]
pub mod ollama;
#[cfg(feature = "openai")]
pub mod openai;
#[cfg(any(
    feature = "openai",
    feature = "anthropic",
    feature = "gemini",
    feature = "ollama"
))]
mod pump;

#[cfg(feature = "anthropic")]
pub use anthropic::{AnthropicConfig, AnthropicProvider};
#[cfg(feature = "compatible")]
pub use compatible::{CompatibleService, CompatibleSpec};
#[cfg(feature = "gemini")]
pub use gemini::{GeminiConfig, GeminiProvider};
pub use mock::{MockProvider, MockReply};
#[cfg(feature = "ollama")]
pub use ollama::{OllamaConfig, OllamaProvider};
#[cfg(feature = "openai")]
pub use openai::{
    MaxTokensField, OpenAiConfig, OpenAiProvider, OpenAiQuirks, ReasoningField, SeedField,
};
