//! Exact token counts for OpenAI models with tiktoken, and the choice of counter per model.
//!
//! [`TiktokenCounter`] counts with the model's own BPE encoding (`o200k_base` for gpt-4o,
//! gpt-4.1, gpt-5 and the o-series; `cl100k_base` for gpt-4, gpt-3.5 and the embedding
//! models) and adds the chat framing OpenAI's cookbook documents. The encodings' ranks are
//! embedded in the `tiktoken-rs` crate: counting reads no file and downloads nothing.
//! [`counter_for`] picks it for OpenAI models and falls back to core's labelled
//! [`EstimateCounter`] for everything else.

use std::sync::Arc;

use exllm_core::chat::{ContentPart, Message, Role, ToolDefinition};
use exllm_core::context::{EstimateCounter, TOKENS_PER_MESSAGE, TokenCounter, image_tokens};
use serde_json::Value;
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

/// An OpenAI BPE encoding ExLLM counts chat tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and the o-series (o1, o3, o4-mini).
    O200kBase,
    /// gpt-4, gpt-4-turbo, gpt-3.5-turbo and the `text-embedding-*` models.
    Cl100kBase,
}

impl Encoding {
    /// The encoding's name as OpenAI's `tiktoken` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::O200kBase => "o200k_base",
            Self::Cl100kBase => "cl100k_base",
        }
    }

    fn bpe(self) -> &'static CoreBPE {
        // Built once per process from the ranks embedded in tiktoken-rs.
        match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// Tokens that open each function in the tool block: the cookbook's `func_init`, 7 for
    /// gpt-4o-era models and 10 for gpt-4 and gpt-3.5.
    fn tool_start(self) -> i64 {
        match self {
            Self::O200kBase => 7,
            Self::Cl100kBase => 10,
        }
    }
}

/// Exact token counts for an OpenAI model's encoding.
///
/// Text, tool calls and tool results are counted exactly, with OpenAI's chat framing: 3 tokens
/// per message plus the role, and 3 for the reply priming, per the OpenAI cookbook's "How to
/// count tokens with tiktoken"
/// (<https://github.com/openai/openai-cookbook/blob/main/examples/How_to_count_tokens_with_tiktoken.ipynb>).
/// Two parts are approximations even there, because OpenAI does not document them: tool
/// definitions (counted by the same cookbook's formula for tools) and images (counted by
/// [`image_tokens`], since an image's cost depends on its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TiktokenCounter {
    encoding: Encoding,
}

impl TiktokenCounter {
    /// A counter for `encoding`.
    pub fn new(encoding: Encoding) -> Self {
        Self { encoding }
    }

    /// The counter for an OpenAI model id (`gpt-4o-mini`, `gpt-4.1-nano-2025-04-14`, `o3`,
    /// `ft:gpt-4o-mini:org::id`, or `openai/gpt-4o` as OpenRouter names it), or `None` for a
    /// model that is not OpenAI's or whose encoding is not a chat encoding ExLLM counts
    /// (gpt-oss uses the Harmony format, whose framing differs).
    pub fn for_model(model: &str) -> Option<Self> {
        let id = model.rsplit('/').next().unwrap_or(model);
        match get_tokenizer(id)? {
            Tokenizer::O200kBase => Some(Self::new(Encoding::O200kBase)),
            Tokenizer::Cl100kBase => Some(Self::new(Encoding::Cl100kBase)),
            _ => None,
        }
    }

    /// The encoding this counter uses.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The tokens of a text. Special-token spellings such as `<|endoftext|>` count as the
    /// ordinary text they are when they appear in a message.
    pub fn count_text(&self, text: &str) -> u64 {
        self.encoding.bpe().count_ordinary(text) as u64
    }

    /// One message in OpenAI's chat format: framing, role and content.
    fn framed(&self, role: &str, content: u64) -> u64 {
        TOKENS_PER_MESSAGE
            .saturating_add(self.count_text(role))
            .saturating_add(content)
    }

    /// The tokens of a JSON schema fragment the cookbook's formula does not look into (nested
    /// objects, array items), counted as its compact JSON text.
    fn count_json(&self, value: &Value) -> u64 {
        self.count_text(&value.to_string())
    }
}

/// Tool-call arguments as OpenAI receives them: compact JSON, or the verbatim text kept when
/// the model produced invalid JSON (as the OpenAI adapter sends them).
fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// Tokens each tool call adds besides its name and arguments (tiktoken-rs's
/// `FUNCTION_CALL_OVERHEAD`, after the cookbook).
const TOOL_CALL_OVERHEAD: u64 = 1;

impl TokenCounter for TiktokenCounter {
    fn count_message(&self, message: &Message) -> u64 {
        // Mirrors how the OpenAI adapter sends a message: each tool result becomes a `tool`
        // message of its own; what else the message holds goes under its role.
        let mut total = 0u64;
        let mut text = String::new();
        let mut refusal = String::new();
        let mut extra = 0u64;
        let mut results = 0usize;
        let mut others = 0usize;
        for part in &message.content {
            match part {
                ContentPart::ToolResult(result) => {
                    results += 1;
                    total =
                        total.saturating_add(self.framed("tool", self.count_text(&result.content)));
                    continue;
                }
                ContentPart::Text { text: t } => text.push_str(t),
                ContentPart::Refusal { text: t } => refusal.push_str(t),
                ContentPart::Image { detail, .. } => {
                    extra = extra.saturating_add(image_tokens(detail.as_deref()));
                }
                ContentPart::ToolCall(call) => {
                    extra = extra
                        .saturating_add(self.count_text(&call.name))
                        .saturating_add(self.count_text(&arguments_text(&call.arguments)))
                        .saturating_add(TOOL_CALL_OVERHEAD);
                }
                // Chat Completions takes no reasoning input: the adapter leaves it out.
                ContentPart::Reasoning(_) => {}
            }
            others += 1;
        }
        let own = self
            .count_text(&text)
            .saturating_add(self.count_text(&refusal))
            .saturating_add(extra);
        let sent_as_own_message = match message.role {
            // A user message that only carried tool results sends nothing more.
            Role::User => !(results > 0 && others == 0),
            Role::Tool => results == 0,
            Role::System | Role::Assistant => true,
        };
        if sent_as_own_message {
            total = total.saturating_add(self.framed(message.role.as_str(), own));
        }
        total
    }

    fn count_tools(&self, tools: &[ToolDefinition]) -> u64 {
        if tools.is_empty() {
            return 0;
        }
        // The cookbook's `num_tokens_for_tools`: per function a start, "name:description"
        // (one trailing period dropped); per property a key cost and "key:type:description";
        // per enum value its text; one end for the block. The cookbook's constants are
        // fitted to observed usage, hence signed arithmetic (an enum starts at -3).
        const PROPERTIES_START: i64 = 3;
        const PROPERTY_KEY: i64 = 3;
        const ENUM_START: i64 = -3;
        const ENUM_ITEM: i64 = 3;
        const TOOLS_END: i64 = 12;
        let tokens = |text: &str| i64::try_from(self.count_text(text)).unwrap_or(i64::MAX);
        let without_period = |text: &str| text.strip_suffix('.').unwrap_or(text).to_owned();
        let mut total: i64 = TOOLS_END;
        for tool in tools {
            total = total.saturating_add(self.encoding.tool_start());
            let description = without_period(tool.description.as_deref().unwrap_or(""));
            total = total.saturating_add(tokens(&format!("{}:{description}", tool.name)));
            let Some(properties) = tool
                .parameters
                .get("properties")
                .and_then(Value::as_object)
                .filter(|p| !p.is_empty())
            else {
                continue;
            };
            total = total.saturating_add(PROPERTIES_START);
            for (key, schema) in properties {
                total = total.saturating_add(PROPERTY_KEY);
                let kind = match schema.get("type") {
                    Some(Value::String(kind)) => kind.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let description = without_period(
                    schema
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
                if let Some(values) = schema.get("enum").and_then(Value::as_array) {
                    total = total.saturating_add(ENUM_START);
                    for value in values {
                        let text = value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned);
                        total = total
                            .saturating_add(ENUM_ITEM)
                            .saturating_add(tokens(&text));
                    }
                }
                total = total.saturating_add(tokens(&format!("{key}:{kind}:{description}")));
                // The cookbook stops at flat properties; nested schemas still cost their text.
                if let Some(object) = schema.as_object() {
                    for (name, nested) in object {
                        if !matches!(name.as_str(), "type" | "description" | "enum") {
                            let cost = self.count_json(nested);
                            total = total.saturating_add(i64::try_from(cost).unwrap_or(i64::MAX));
                        }
                    }
                }
            }
        }
        u64::try_from(total).unwrap_or(0)
    }

    fn is_exact(&self) -> bool {
        true
    }
}

/// Providers with model families of their own: a model there named like OpenAI's is not
/// OpenAI's encoding (an Ollama tag can be any name).
const OWN_MODEL_FAMILIES: &[&str] = &["anthropic", "gemini", "google", "ollama"];

/// The token counter for a model at a provider: [`TiktokenCounter`] for OpenAI models, on
/// `openai` or any OpenAI-compatible service that serves them (OpenRouter's `openai/gpt-4o`,
/// Azure, a proxy); core's labelled [`EstimateCounter`] for everything else.
pub fn counter_for(provider: &str, model: &str) -> Arc<dyn TokenCounter> {
    if OWN_MODEL_FAMILIES.contains(&provider) {
        return Arc::new(EstimateCounter);
    }
    match TiktokenCounter::for_model(model) {
        Some(counter) => Arc::new(counter),
        None => Arc::new(EstimateCounter),
    }
}
