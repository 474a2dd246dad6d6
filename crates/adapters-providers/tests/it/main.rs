//! The integration tests of the provider adapters: recorded wire data served over real TCP by
//! the fixture server, request bodies checked against OpenAI's published schema, and the mock.

#[cfg(feature = "anthropic")]
mod anthropic;
#[cfg(feature = "openai")]
mod fixtures;
#[cfg(feature = "gemini")]
mod gemini;
#[cfg(feature = "compatible")]
mod groq;
#[cfg(all(
    feature = "openai",
    feature = "anthropic",
    feature = "gemini",
    feature = "ollama",
    feature = "compatible"
))]
mod matrix;
mod mock;
#[cfg(feature = "ollama")]
mod ollama;
#[cfg(feature = "openai")]
mod openai_chat;
#[cfg(feature = "openai")]
mod openai_conformance;
#[cfg(feature = "openai")]
mod openai_embed;
#[cfg(feature = "openai")]
mod openai_errors;
#[cfg(feature = "openai")]
mod openai_schema;
#[cfg(feature = "openai")]
mod openai_stream;
