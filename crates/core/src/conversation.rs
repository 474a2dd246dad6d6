//! Conversations: a history of messages with a provider, a model and running totals.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::Message;
use crate::cost::Cost;
use crate::usage::Usage;

/// A conversation: its messages in order, and the usage and cost summed over its calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conversation {
    /// The id.
    pub id: String,
    /// The provider name.
    pub provider: String,
    /// The model id.
    pub model: String,
    /// The messages, oldest first (the system prompt, when set, is the first).
    pub messages: Vec<Message>,
    /// Usage summed over every call.
    pub usage: Usage,
    /// Cost summed over every priced call; `None` while no call was priced.
    pub cost: Option<Cost>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// When the store created it, in milliseconds since the Unix epoch (set by the store).
    #[serde(default)]
    pub created_at_ms: u64,
    /// When the store last appended to it (set by the store).
    #[serde(default)]
    pub updated_at_ms: u64,
}

impl Conversation {
    /// A new, empty conversation.
    pub fn new(
        id: impl Into<String>,
        provider: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            provider: provider.into(),
            model: model.into(),
            messages: Vec::new(),
            usage: Usage::default(),
            cost: None,
            metadata: Map::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    /// `provider/model`.
    pub fn address(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }

    /// Appends messages and adds a call's usage and cost to the totals.
    pub fn record(&mut self, messages: Vec<Message>, usage: &Usage, cost: Option<&Cost>) {
        self.messages.extend(messages);
        self.usage.add(usage);
        if let Some(cost) = cost {
            self.cost.get_or_insert_with(Cost::default).add(cost);
        }
    }
}
