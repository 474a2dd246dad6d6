//! Virtual keys in the PostgreSQL store. Spend changes read the row `FOR UPDATE` and write it
//! in one transaction, so concurrent writers (tasks, processes, gateway instances) queue on the row
//! lock and a budget is never overspent.

use async_trait::async_trait;
use exllm_core::{Decimal, KeyStore, Reservation, Result, VirtualKey};
use sqlx::postgres::PgRow;
use sqlx::{Row, query};

use crate::keys_memory::{add_spent, key_exists, reserve_within};
use crate::keys_rows::{KeyRow, money};
use crate::postgres::PostgresStore;
use crate::rows::db_error;

fn pg_error(err: sqlx::Error) -> exllm_core::Error {
    db_error("PostgreSQL", err)
}

fn key_row(row: &PgRow) -> Result<VirtualKey> {
    let get = || -> std::result::Result<KeyRow, sqlx::Error> {
        Ok(KeyRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            hash: row.try_get("hash")?,
            budget_usd: row.try_get("budget_usd")?,
            spent_usd: row.try_get("spent_usd")?,
            requests_per_minute: row.try_get("requests_per_minute")?,
            tokens_per_minute: row.try_get("tokens_per_minute")?,
            allowed_models: row.try_get("allowed_models")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            revoked: row.try_get("revoked")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    };
    get().map_err(pg_error)?.into_key()
}

impl PostgresStore {
    /// Applies `change` to key `id`'s spend (and budget) under its row lock; `None` when the
    /// key is missing. `change` answers the new spend, or `None` to leave it.
    async fn change_spend<T>(
        &self,
        id: &str,
        change: impl FnOnce(Decimal, Option<Decimal>) -> (Option<Decimal>, T),
    ) -> Result<Option<T>> {
        let mut tx = self.pool().begin().await.map_err(pg_error)?;
        let row = query("SELECT spent_usd, budget_usd FROM virtual_keys WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let spent: String = row.try_get("spent_usd").map_err(pg_error)?;
        let budget: Option<String> = row.try_get("budget_usd").map_err(pg_error)?;
        let (spent, budget) = money(id, &spent, budget.as_deref())?;
        let (new_spent, answer) = change(spent, budget);
        if let Some(new_spent) = new_spent {
            query("UPDATE virtual_keys SET spent_usd = $2 WHERE id = $1")
                .bind(id)
                .bind(new_spent.to_string())
                .execute(&mut *tx)
                .await
                .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(Some(answer))
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create(&self, key: VirtualKey) -> Result<()> {
        let row = KeyRow::from_key(&key)?;
        query(
            "INSERT INTO virtual_keys (id, name, hash, budget_usd, spent_usd, requests_per_minute,
                tokens_per_minute, allowed_models, expires_at_ms, revoked, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.hash)
        .bind(&row.budget_usd)
        .bind(&row.spent_usd)
        .bind(row.requests_per_minute)
        .bind(row.tokens_per_minute)
        .bind(&row.allowed_models)
        .bind(row.expires_at_ms)
        .bind(row.revoked)
        .bind(row.created_at_ms)
        .execute(self.pool())
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => key_exists(&key.id),
            _ => pg_error(err),
        })?;
        Ok(())
    }

    async fn find_by_hash(&self, hash: &str) -> Result<Option<VirtualKey>> {
        let row = query(crate::keys_rows::select_keys!("WHERE hash = $1"))
            .bind(hash)
            .fetch_optional(self.pool())
            .await
            .map_err(pg_error)?;
        row.as_ref().map(key_row).transpose()
    }

    async fn list(&self) -> Result<Vec<VirtualKey>> {
        let rows = query(crate::keys_rows::select_keys!("ORDER BY created_at_ms, id"))
            .fetch_all(self.pool())
            .await
            .map_err(pg_error)?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke(&self, id: &str) -> Result<bool> {
        let done = query("UPDATE virtual_keys SET revoked = TRUE WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(pg_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_spend(&self, id: &str, delta: Decimal) -> Result<Option<Decimal>> {
        self.change_spend(id, |spent, _| {
            let after = add_spent(spent, delta);
            (Some(after), after)
        })
        .await
    }

    async fn reserve(&self, id: &str, amount: Decimal) -> Result<Reservation> {
        let answer = self
            .change_spend(id, |spent, budget| {
                match reserve_within(spent, budget, amount) {
                    Some(after) => (Some(after), Reservation::Reserved(after)),
                    None => (None, Reservation::Exceeded(spent)),
                }
            })
            .await?;
        Ok(answer.unwrap_or(Reservation::Missing))
    }
}
