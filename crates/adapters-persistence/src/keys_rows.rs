//! Virtual keys as database rows, shared by the SQLite and PostgreSQL stores.

use exllm_core::{Decimal, Error, Result, VirtualKey};

use crate::rows::{decimal, to_i64, to_u64};

/// The columns every key row is read with, in the order the backends' `key_row` expects; the
/// SQL backends append their own `WHERE`/`ORDER BY` in their placeholder dialect.
macro_rules! select_keys {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, hash, budget_usd, spent_usd, requests_per_minute, \
             tokens_per_minute, allowed_models, expires_at_ms, revoked, created_at_ms \
             FROM virtual_keys ",
            $rest
        )
    };
}
pub(crate) use select_keys;

/// One row's values as the database holds them.
#[derive(Debug)]
pub(crate) struct KeyRow {
    pub id: String,
    pub name: String,
    pub hash: String,
    pub budget_usd: Option<String>,
    pub spent_usd: String,
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub allowed_models: String,
    pub expires_at_ms: Option<i64>,
    pub revoked: bool,
    pub created_at_ms: i64,
}

impl KeyRow {
    /// The row for `key`.
    pub fn from_key(key: &VirtualKey) -> Result<Self> {
        let optional =
            |field: &str, value: Option<u64>| value.map(|v| to_i64(field, v)).transpose();
        Ok(Self {
            id: key.id.clone(),
            name: key.name.clone(),
            hash: key.hash.clone(),
            budget_usd: key.budget_usd.map(|d| d.normalize().to_string()),
            spent_usd: key.spent_usd.normalize().to_string(),
            requests_per_minute: optional("requests_per_minute", key.requests_per_minute)?,
            tokens_per_minute: optional("tokens_per_minute", key.tokens_per_minute)?,
            allowed_models: serde_json::to_string(&key.allowed_models).map_err(|e| {
                Error::validation("allowed_models", format!("cannot be stored: {e}"))
            })?,
            expires_at_ms: optional("expires_at_ms", key.expires_at_ms)?,
            revoked: key.revoked,
            created_at_ms: to_i64("created_at_ms", key.created_at_ms)?,
        })
    }

    /// The key this row holds; a corrupt value is a `Decode` error naming the key.
    pub fn into_key(self) -> Result<VirtualKey> {
        let what = format!("key `{}`", self.id);
        let optional =
            |field: &str, value: Option<i64>| value.map(|v| to_u64(&what, field, v)).transpose();
        let budget_usd = self
            .budget_usd
            .as_deref()
            .map(|text| decimal(&what, "budget_usd", text))
            .transpose()?;
        let spent_usd = decimal(&what, "spent_usd", &self.spent_usd)?;
        let allowed_models: Vec<String> =
            serde_json::from_str(&self.allowed_models).map_err(|e| {
                Error::decode(
                    format!("{what}: column `allowed_models` is not a JSON list of strings: {e}"),
                    self.allowed_models.chars().take(200).collect::<String>(),
                )
            })?;
        let mut key = VirtualKey::new(self.id.clone(), self.name, self.hash);
        key.budget_usd = budget_usd;
        key.spent_usd = spent_usd;
        key.requests_per_minute = optional("requests_per_minute", self.requests_per_minute)?;
        key.tokens_per_minute = optional("tokens_per_minute", self.tokens_per_minute)?;
        key.allowed_models = allowed_models;
        key.expires_at_ms = optional("expires_at_ms", self.expires_at_ms)?;
        key.revoked = self.revoked;
        key.created_at_ms = to_u64(&what, "created_at_ms", self.created_at_ms)?;
        Ok(key)
    }
}

/// A spend and budget as read for an update.
pub(crate) fn money(
    id: &str,
    spent: &str,
    budget: Option<&str>,
) -> Result<(Decimal, Option<Decimal>)> {
    let what = format!("key `{id}`");
    let spent = decimal(&what, "spent_usd", spent)?;
    let budget = budget
        .map(|b| decimal(&what, "budget_usd", b))
        .transpose()?;
    Ok((spent, budget))
}
