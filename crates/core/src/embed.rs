//! Embeddings: texts in, vectors out, with usage and cost.

use serde::{Deserialize, Serialize};

use crate::cost::Cost;
use crate::usage::Usage;

/// A request for embeddings of one or more texts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbedRequest {
    /// The model id (no `provider/` prefix once it reaches a provider).
    pub model: String,
    /// The texts, each embedded separately.
    pub inputs: Vec<String>,
    /// The number of dimensions, for models that can shorten their vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
}

impl EmbedRequest {
    /// A request for `inputs` with `model`.
    pub fn new(model: impl Into<String>, inputs: Vec<String>) -> Self {
        Self {
            model: model.into(),
            inputs,
            dimensions: None,
        }
    }
    /// Sets the number of dimensions.
    pub fn dimensions(mut self, n: u32) -> Self {
        self.dimensions = Some(n);
        self
    }
}

/// Embeddings, one vector per input, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbedResponse {
    /// The provider name.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// One vector per input, in input order.
    pub embeddings: Vec<Vec<f32>>,
    /// Token usage (input only).
    pub usage: Usage,
    /// The cost, `None` when the model has no known price.
    pub cost: Option<Cost>,
}

impl EmbedResponse {
    /// An empty response, to be filled in by an adapter.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            embeddings: Vec::new(),
            usage: Usage::default(),
            cost: None,
        }
    }
}
