//! Virtual keys: the gateway's per-caller credentials with a USD budget, limits, allowed models
//! and an expiry, and the [`KeyStore`] port behind which they are kept.
//!
//! A store never holds a key itself, only its hash (hex SHA-256 computed by the caller), so a
//! leaked database hands out no credential.

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::error::Result;

/// One virtual key as stored: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VirtualKey {
    /// The key's public id (`key_…`), used by the admin endpoints, the ledger and limits.
    pub id: String,
    /// A human name for the key (who or what uses it).
    pub name: String,
    /// The lowercase hex SHA-256 of the secret key.
    pub hash: String,
    /// The most the key may spend, in USD; `None` is unlimited.
    pub budget_usd: Option<Decimal>,
    /// What the key has spent (and reserved for calls in flight), in USD.
    pub spent_usd: Decimal,
    /// Requests per minute allowed to this key; `None` is unlimited.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute allowed to this key; `None` is unlimited.
    pub tokens_per_minute: Option<u64>,
    /// Model addresses or aliases the key may call; empty allows every model.
    pub allowed_models: Vec<String>,
    /// When the key stops working, in milliseconds since the Unix epoch; `None` never.
    pub expires_at_ms: Option<u64>,
    /// Whether the key was revoked.
    pub revoked: bool,
    /// When the key was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

impl VirtualKey {
    /// A key with `id`, `name` and `hash`, no budget, no limits, all models, no expiry.
    pub fn new(id: impl Into<String>, name: impl Into<String>, hash: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            hash: hash.into(),
            budget_usd: None,
            spent_usd: Decimal::ZERO,
            requests_per_minute: None,
            tokens_per_minute: None,
            allowed_models: Vec::new(),
            expires_at_ms: None,
            revoked: false,
            created_at_ms: 0,
        }
    }

    /// Whether the key has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }

    /// Whether the key may call `model` (an address or an alias): allowed when the list is
    /// empty or names it.
    pub fn allows(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == model)
    }

    /// The budget left, `None` when unlimited (never negative).
    pub fn remaining_usd(&self) -> Option<Decimal> {
        self.budget_usd
            .map(|budget| (budget - self.spent_usd).max(Decimal::ZERO))
    }
}

/// What [`KeyStore::reserve`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The amount was added to the key's spend; the new spend.
    Reserved(Decimal),
    /// The amount would exceed the budget: nothing was added. The spend as it stands.
    Exceeded(Decimal),
    /// No such key.
    Missing,
}

/// Where virtual keys are kept. Spend changes are atomic in the store, so several gateway
/// instances sharing one database hold a key to one budget.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Stores a new key. An id or hash already present is a validation error.
    async fn create(&self, key: VirtualKey) -> Result<()>;

    /// The key whose hash is `hash` (revoked and expired ones included), or `None`.
    async fn find_by_hash(&self, hash: &str) -> Result<Option<VirtualKey>>;

    /// Every key, oldest first.
    async fn list(&self) -> Result<Vec<VirtualKey>>;

    /// Revokes key `id`; returns whether it existed.
    async fn revoke(&self, id: &str) -> Result<bool>;

    /// Adds `delta` (negative gives back) to key `id`'s spend unconditionally and atomically;
    /// returns the new spend, `None` when the key is missing.
    async fn add_spend(&self, id: &str, delta: Decimal) -> Result<Option<Decimal>>;

    /// Adds `amount` to key `id`'s spend only if the key has budget left and the spend stays
    /// within it (always, for a key without a budget), atomically: the check before a call. A
    /// key whose spend has reached its budget is refused even a zero amount. After the call the
    /// caller settles with [`KeyStore::add_spend`]`(actual − amount)`.
    async fn reserve(&self, id: &str, amount: Decimal) -> Result<Reservation>;
}
