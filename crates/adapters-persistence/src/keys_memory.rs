//! Virtual keys in memory, and the budget rule every backend applies.

use async_trait::async_trait;
use exllm_core::{Decimal, Error, KeyStore, Reservation, Result, VirtualKey};
use tokio::sync::Mutex;

/// Virtual keys in memory, gone when the process ends. Every change happens under one lock,
/// so reservations never overspend a budget.
#[derive(Debug, Default)]
pub struct InMemoryKeyStore {
    keys: Mutex<Vec<VirtualKey>>,
}

impl InMemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyStore for InMemoryKeyStore {
    async fn create(&self, key: VirtualKey) -> Result<()> {
        let mut keys = self.keys.lock().await;
        if keys.iter().any(|k| k.id == key.id || k.hash == key.hash) {
            return Err(key_exists(&key.id));
        }
        keys.push(key);
        Ok(())
    }

    async fn find_by_hash(&self, hash: &str) -> Result<Option<VirtualKey>> {
        Ok(self
            .keys
            .lock()
            .await
            .iter()
            .find(|k| k.hash == hash)
            .cloned())
    }

    async fn list(&self) -> Result<Vec<VirtualKey>> {
        let mut keys = self.keys.lock().await.clone();
        keys.sort_by_key(|k| k.created_at_ms);
        Ok(keys)
    }

    async fn revoke(&self, id: &str) -> Result<bool> {
        let mut keys = self.keys.lock().await;
        Ok(match keys.iter_mut().find(|k| k.id == id) {
            Some(key) => {
                key.revoked = true;
                true
            }
            None => false,
        })
    }

    async fn add_spend(&self, id: &str, delta: Decimal) -> Result<Option<Decimal>> {
        let mut keys = self.keys.lock().await;
        Ok(keys.iter_mut().find(|k| k.id == id).map(|key| {
            key.spent_usd = add_spent(key.spent_usd, delta);
            key.spent_usd
        }))
    }

    async fn reserve(&self, id: &str, amount: Decimal) -> Result<Reservation> {
        let mut keys = self.keys.lock().await;
        let Some(key) = keys.iter_mut().find(|k| k.id == id) else {
            return Ok(Reservation::Missing);
        };
        Ok(
            match reserve_within(key.spent_usd, key.budget_usd, amount) {
                Some(spent) => {
                    key.spent_usd = spent;
                    Reservation::Reserved(spent)
                }
                None => Reservation::Exceeded(key.spent_usd),
            },
        )
    }
}

/// The spend after reserving `amount`, or `None` when the budget does not allow it: a key
/// whose spend has reached its budget is refused even a zero amount, and no reservation may
/// take the spend past the budget.
pub(crate) fn reserve_within(
    spent: Decimal,
    budget: Option<Decimal>,
    amount: Decimal,
) -> Option<Decimal> {
    let after = spent.checked_add(amount)?;
    match budget {
        Some(budget) if spent >= budget || after > budget => None,
        _ => Some(after.normalize()),
    }
}

/// The spend after adding `delta`, never below zero (a settled refund cannot create credit)
/// and saturating rather than overflowing.
pub(crate) fn add_spent(spent: Decimal, delta: Decimal) -> Decimal {
    spent
        .checked_add(delta)
        .unwrap_or(Decimal::MAX)
        .max(Decimal::ZERO)
        .normalize()
}

/// The error for creating a key whose id or hash is taken.
pub(crate) fn key_exists(id: &str) -> Error {
    Error::validation(
        "id",
        format!("a key with id `{id}` (or its hash) already exists"),
    )
}
