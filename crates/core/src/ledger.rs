//! The usage ledger's records and queries: every call's tokens, cost, latency and outcome.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::cost::Cost;
use crate::error::ErrorKind;
use crate::usage::Usage;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "kind")]
pub enum Outcome {
    /// A response (or a complete stream).
    Ok,
    /// An error of this kind.
    Error(ErrorKind),
}

/// One attempt of one call, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UsageRecord {
    /// When the attempt started, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The provider.
    pub provider: String,
    /// The model asked for.
    pub model: String,
    /// Tokens by kind (partial usage for failed streams, zero when unknown).
    pub usage: Usage,
    /// The cost, `None` when unpriced.
    pub cost: Option<Cost>,
    /// Wall time of the attempt in milliseconds.
    pub latency_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The caller's key id, when there is one.
    pub caller: Option<String>,
    /// The conversation, when the call belongs to one.
    pub conversation_id: Option<String>,
    /// Whether the call streamed.
    pub stream: bool,
}

impl UsageRecord {
    /// A record of an attempt on `provider`/`model` that started at `at_ms`.
    pub fn new(at_ms: u64, provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            at_ms,
            provider: provider.into(),
            model: model.into(),
            usage: Usage::default(),
            cost: None,
            latency_ms: 0,
            outcome: Outcome::Ok,
            attempt: 1,
            caller: None,
            conversation_id: None,
            stream: false,
        }
    }
}

/// How ledger totals are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By provider.
    #[default]
    Provider,
    /// By `provider/model`.
    Model,
    /// By UTC day (`YYYY-MM-DD`).
    Day,
    /// By caller key.
    Caller,
}

/// Which records a query covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageQuery {
    /// Records at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Records before this time.
    pub until_ms: Option<u64>,
    /// Only this caller's records.
    pub caller: Option<String>,
    /// The grouping.
    pub group_by: GroupBy,
}

/// The sums over one group of records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageTotal {
    /// The group's key (a provider, `provider/model`, a day or a caller).
    pub key: String,
    /// Attempts recorded.
    pub calls: u64,
    /// Attempts that ended in an error.
    pub errors: u64,
    /// Tokens summed.
    pub usage: Usage,
    /// Cost summed over priced attempts, exact.
    pub cost_usd: Decimal,
    /// Attempts without a price (their cost is not in `cost_usd`).
    pub unpriced: u64,
}
