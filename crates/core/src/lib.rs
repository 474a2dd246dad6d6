//! ExLLM's core: the provider-neutral domain (messages, requests, responses, stream events,
//! usage, exact cost, models, conversations), the ports behind which IO sits, and the
//! [`ExLLM`] facade.
//!
//! This crate knows no provider wire format and does no IO: adapters implement its ports,
//! and `exllm-app` wires them together. Most users depend on the `exllm` umbrella crate instead.

pub mod chat;
pub mod context;
pub mod conversation;
pub mod conversations;
pub mod cost;
pub mod embed;
pub mod error;
pub mod extensions;
pub mod facade;
pub mod keys;
pub mod ledger;
pub mod model;
pub mod ports;
pub mod secret;
pub mod stream;
#[cfg(feature = "structured")]
pub mod structured;
pub mod usage;

pub use chat::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, ImageSource, Message, Reasoning,
    ResponseFormat, Role, ToolCall, ToolChoice, ToolDefinition, ToolResult,
};
pub use context::{ContextStrategy, EstimateCounter, TokenCounter};
pub use conversation::Conversation;
pub use conversations::Conversations;
pub use cost::Cost;
pub use embed::{EmbedRequest, EmbedResponse};
pub use error::{Error, ErrorBody, ErrorKind, Result};
pub use extensions::{CacheControl, CallerKey, ConversationRef, Extensions};
pub use facade::{CallOptions, ChatInput, ContextSettings, ExLLM, ExLLMBuilder, ModelAddress};
pub use keys::{KeyStore, Reservation, VirtualKey};
pub use ledger::{GroupBy, Outcome, UsageQuery, UsageRecord, UsageTotal};
pub use model::{Capabilities, Capability, Catalogue, Model, ModelKind, Pricing};
pub use ports::{
    Acquire, ChatProvider, ConversationFilter, ConversationStore, Middleware, Next, RateLimitStore,
    ResponseCache, UsageLedger,
};
pub use rust_decimal::Decimal;
pub use secret::Secret;
pub use stream::{ChatStream, StreamAccumulator, StreamEvent};
#[cfg(feature = "structured")]
pub use structured::Structured;
pub use usage::Usage;

#[cfg(test)]
mod tests;
