//! The SQLite store: conversations and the usage ledger in one embedded database file.
//!
//! The file is created on first use (its directory too), runs in WAL mode with a busy timeout
//! and foreign keys on, and is migrated to the current schema when opened. Every write is one
//! `BEGIN IMMEDIATE` transaction, so concurrent writers (tasks or processes) queue on the write
//! lock instead of failing, and a process killed mid-write leaves the last committed state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use exllm_core::{
    Conversation, ConversationFilter, ConversationStore, Cost, Error, Message, Outcome, Result,
    Usage, UsageLedger, UsageQuery, UsageRecord, UsageTotal,
};
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, query};

use crate::ids::{fresh_conversation_id, now_ms};
use crate::ledger::{Totals, TotalsRow, add_cost};
use crate::memory::{already_exists, not_found};
use crate::rows::{
    ConversationRow, bound_i64, cost_columns, cost_from_columns, db_error, decimal, message_json,
    metadata_json, outcome_text, to_i64, to_u64, token_columns, usage_from_columns,
};

/// How long a writer waits for another writer's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections per file: one writer at a time anyway, a few readers alongside (WAL).
const MAX_CONNECTIONS: u32 = 4;

/// The schema versions, oldest first; each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "conversations, messages, usage records",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "virtual keys",
        include_str!("../migrations/sqlite/0002_virtual_keys.sql"),
    ),
];

/// A conversation store and usage ledger in an SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The file, or `None` in memory; named in errors.
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    ///
    /// Errors are `Config` errors naming the path and what is wrong with it (a directory where
    /// the file should be, a parent that cannot be created, permission denied, not a database).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display();
        if path.as_os_str().is_empty() {
            return Err(Error::config("the SQLite database path is empty"));
        }
        if path.is_dir() {
            return Err(Error::config(format!(
                "cannot open the SQLite database `{shown}`: it is a directory, not a file"
            )));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| {
                Error::config(format!(
                    "cannot create the directory `{}` for the SQLite database `{shown}`: {err}",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable against a crashed process in WAL mode; only an OS crash or power
            // loss can lose the last transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|err| {
                Error::config(format!("cannot open the SQLite database `{shown}`: {err}"))
            })?;
        let store = Self {
            pool,
            path: Some(path.to_owned()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A fresh database in memory, gone when the store is dropped (tests, demos).
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(":memory:")
            .foreign_keys(true);
        // Each connection to `:memory:` is its own database: keep exactly one, forever.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|err| sqlite_error(err).with_kind(exllm_core::ErrorKind::Config))?;
        let store = Self { pool, path: None };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool, for maintenance and tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Brings the schema up to the newest version this build knows.
    async fn migrate(&self) -> Result<()> {
        let result = async {
            // IMMEDIATE takes the write lock first, so two processes opening a new file at once
            // migrate one after the other instead of both trying.
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS exllm_migrations (
                    version INTEGER PRIMARY KEY NOT NULL,
                    description TEXT NOT NULL,
                    applied_at_ms INTEGER NOT NULL
                )",
            )
            .execute(&mut *tx)
            .await?;
            let current: i64 = query("SELECT COALESCE(MAX(version), 0) FROM exllm_migrations")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            for (version, description, sql) in MIGRATIONS {
                if *version <= current {
                    continue;
                }
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                query(
                    "INSERT INTO exllm_migrations (version, description, applied_at_ms)
                     VALUES (?1, ?2, ?3)",
                )
                .bind(version)
                .bind(description)
                .bind(bound_i64(now_ms()))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(current)
        }
        .await;
        let current = result.map_err(|err| {
            Error::config(format!(
                "cannot prepare the SQLite database {}: {err}",
                self.describe()
            ))
        })?;
        let newest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > newest {
            return Err(Error::config(format!(
                "the SQLite database {} has schema version {current}, newer than this ExLLM \
                 knows ({newest}); upgrade ExLLM",
                self.describe()
            )));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(path) => format!("`{}`", path.display()),
            None => "in memory".to_owned(),
        }
    }
}

macro_rules! conversation_columns {
    () => {
        "id, provider, model, metadata, created_at_ms, updated_at_ms, \
         input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, \
         cost_total_usd, cost_input_usd, cost_cached_input_usd, cost_cache_write_usd, \
         cost_output_usd, cost_reasoning_usd"
    };
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn create(&self, mut conversation: Conversation) -> Result<String> {
        if conversation.id.is_empty() {
            conversation.id = fresh_conversation_id();
        }
        let now = to_i64("created_at_ms", now_ms())?;
        let id = conversation.id.clone();
        let metadata = metadata_json(&conversation.metadata)?;
        let tokens = token_columns(&conversation.usage)?;
        let cost = cost_columns(conversation.cost.as_ref());
        let messages = encode_messages(&conversation.messages)?;

        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sqlite_error)?;
        let mut insert = query(concat!(
            "INSERT INTO conversations (",
            conversation_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ))
        .bind(&id)
        .bind(&conversation.provider)
        .bind(&conversation.model)
        .bind(metadata)
        .bind(now)
        .bind(now);
        for value in tokens {
            insert = insert.bind(value);
        }
        for value in cost {
            insert = insert.bind(value);
        }
        insert.execute(&mut *tx).await.map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => already_exists(&id),
            _ => sqlite_error(err),
        })?;
        insert_messages(&mut tx, &id, 0, &messages).await?;
        tx.commit().await.map_err(sqlite_error)?;
        Ok(id)
    }

    async fn get(&self, id: &str) -> Result<Option<Conversation>> {
        // One read transaction: the totals and the messages come from the same snapshot.
        let mut tx = self.pool.begin().await.map_err(sqlite_error)?;
        let conversation = load(&mut tx, id).await?;
        tx.commit().await.map_err(sqlite_error)?;
        Ok(conversation)
    }

    async fn append(
        &self,
        id: &str,
        messages: Vec<Message>,
        usage: Usage,
        cost: Option<Cost>,
    ) -> Result<Conversation> {
        let encoded = encode_messages(&messages)?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sqlite_error)?;
        let row = query(
            "SELECT input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                    reasoning_tokens, cost_total_usd, cost_input_usd, cost_cached_input_usd,
                    cost_cache_write_usd, cost_output_usd, cost_reasoning_usd, updated_at_ms
             FROM conversations WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sqlite_error)?
        .ok_or_else(|| not_found(id))?;
        let what = format!("conversation `{id}`");
        let (mut total_usage, mut total_cost, updated_at_ms) = totals_of(&what, &row)?;
        total_usage.add(&usage);
        if let Some(cost) = &cost {
            add_cost(&mut total_cost, cost)?;
        }
        let next_seq: i64 =
            query("SELECT COALESCE(MAX(seq) + 1, 0) FROM messages WHERE conversation_id = ?1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(sqlite_error)?;
        insert_messages(&mut tx, id, next_seq, &encoded).await?;

        let now = to_i64("updated_at_ms", now_ms())?.max(updated_at_ms);
        let mut update = query(
            "UPDATE conversations SET updated_at_ms = ?1,
                input_tokens = ?2, output_tokens = ?3, cached_input_tokens = ?4,
                cache_write_tokens = ?5, reasoning_tokens = ?6,
                cost_total_usd = ?7, cost_input_usd = ?8, cost_cached_input_usd = ?9,
                cost_cache_write_usd = ?10, cost_output_usd = ?11, cost_reasoning_usd = ?12
             WHERE id = ?13",
        )
        .bind(now);
        for value in token_columns(&total_usage)? {
            update = update.bind(value);
        }
        for value in cost_columns(total_cost.as_ref()) {
            update = update.bind(value);
        }
        update
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sqlite_error)?;
        let conversation = load(&mut tx, id).await?.ok_or_else(|| not_found(id))?;
        tx.commit().await.map_err(sqlite_error)?;
        Ok(conversation)
    }

    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>> {
        let limit = filter
            .limit
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await.map_err(sqlite_error)?;
        let rows = query(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations
              WHERE (?1 IS NULL OR provider = ?1) AND (?2 IS NULL OR model = ?2)
              ORDER BY created_at_ms DESC, rowid DESC
              LIMIT ?3 OFFSET ?4"
        ))
        .bind(filter.provider.as_deref())
        .bind(filter.model.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await
        .map_err(sqlite_error)?;
        let mut conversations = Vec::with_capacity(rows.len());
        for row in &rows {
            let row = conversation_row(row)?;
            let messages = message_rows(&mut tx, &row.id).await?;
            conversations.push(row.into_conversation(messages)?);
        }
        tx.commit().await.map_err(sqlite_error)?;
        Ok(conversations)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sqlite_error)?;
        // Explicit, although the foreign key cascades: a database opened elsewhere with foreign
        // keys off must not keep orphaned messages either.
        query("DELETE FROM messages WHERE conversation_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sqlite_error)?;
        let deleted = query("DELETE FROM conversations WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sqlite_error)?
            .rows_affected();
        tx.commit().await.map_err(sqlite_error)?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl UsageLedger for SqliteStore {
    async fn record(&self, record: UsageRecord) -> Result<()> {
        let mut insert = query(
            "INSERT INTO usage_records (at_ms, provider, model,
                input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                reasoning_tokens, cost_total_usd, cost_input_usd, cost_cached_input_usd,
                cost_cache_write_usd, cost_output_usd, cost_reasoning_usd,
                latency_ms, outcome, attempt, caller, conversation_id, stream)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20)",
        )
        .bind(to_i64("at_ms", record.at_ms)?)
        .bind(&record.provider)
        .bind(&record.model);
        for value in token_columns(&record.usage)? {
            insert = insert.bind(value);
        }
        for value in cost_columns(record.cost.as_ref()) {
            insert = insert.bind(value);
        }
        insert
            .bind(to_i64("latency_ms", record.latency_ms)?)
            .bind(outcome_text(record.outcome))
            .bind(i64::from(record.attempt))
            .bind(record.caller.as_deref())
            .bind(record.conversation_id.as_deref())
            .bind(record.stream)
            .execute(&self.pool)
            .await
            .map_err(sqlite_error)?;
        Ok(())
    }

    async fn totals(&self, query_: &UsageQuery) -> Result<Vec<UsageTotal>> {
        let mut rows = query(
            "SELECT at_ms, provider, model, caller, input_tokens, output_tokens,
                    cached_input_tokens, cache_write_tokens, reasoning_tokens,
                    cost_total_usd, outcome, id
             FROM usage_records
             WHERE (?1 IS NULL OR at_ms >= ?1) AND (?2 IS NULL OR at_ms < ?2)
               AND (?3 IS NULL OR caller = ?3)",
        )
        .bind(query_.since_ms.map(bound_i64))
        .bind(query_.until_ms.map(bound_i64))
        .bind(query_.caller.as_deref())
        .fetch(&self.pool);
        // Streamed and folded as they come: memory stays one row plus one total per group.
        let mut totals = Totals::new(query_.group_by);
        while let Some(row) = rows.try_next().await.map_err(sqlite_error)? {
            let id: i64 = row.try_get("id").map_err(sqlite_error)?;
            let what = format!("usage record {id}");
            let at_ms: i64 = row.try_get("at_ms").map_err(sqlite_error)?;
            let provider: String = row.try_get("provider").map_err(sqlite_error)?;
            let model: String = row.try_get("model").map_err(sqlite_error)?;
            let caller: Option<String> = row.try_get("caller").map_err(sqlite_error)?;
            let cost: Option<String> = row.try_get("cost_total_usd").map_err(sqlite_error)?;
            let outcome: String = row.try_get("outcome").map_err(sqlite_error)?;
            totals.add(TotalsRow {
                at_ms: to_u64(&what, "at_ms", at_ms)?,
                provider: &provider,
                model: &model,
                caller: caller.as_deref(),
                usage: usage_from_columns(&what, token_values(&row)?)?,
                cost_usd: cost
                    .map(|text| decimal(&what, "cost_total_usd", &text))
                    .transpose()?,
                is_error: outcome != outcome_text(Outcome::Ok),
            })?;
        }
        Ok(totals.finish())
    }
}

/// Each message as `(role, JSON)`, encoded before any transaction starts.
fn encode_messages(messages: &[Message]) -> Result<Vec<(&'static str, String)>> {
    messages
        .iter()
        .map(|m| Ok((m.role.as_str(), message_json(m)?)))
        .collect()
}

async fn insert_messages(
    conn: &mut SqliteConnection,
    id: &str,
    first_seq: i64,
    messages: &[(&'static str, String)],
) -> Result<()> {
    for (seq, (role, content)) in (first_seq..).zip(messages) {
        query("INSERT INTO messages (conversation_id, seq, role, content) VALUES (?1, ?2, ?3, ?4)")
            .bind(id)
            .bind(seq)
            .bind(*role)
            .bind(content)
            .execute(&mut *conn)
            .await
            .map_err(sqlite_error)?;
    }
    Ok(())
}

/// The conversation `id` with its messages, read on `conn`.
async fn load(conn: &mut SqliteConnection, id: &str) -> Result<Option<Conversation>> {
    let Some(row) = query(concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM conversations WHERE id = ?1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(sqlite_error)?
    else {
        return Ok(None);
    };
    let row = conversation_row(&row)?;
    let messages = message_rows(conn, id).await?;
    row.into_conversation(messages).map(Some)
}

async fn message_rows(conn: &mut SqliteConnection, id: &str) -> Result<Vec<(i64, String)>> {
    let rows = query("SELECT seq, content FROM messages WHERE conversation_id = ?1 ORDER BY seq")
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(sqlite_error)?;
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq").map_err(|e| in_conversation(id, e))?;
            let content: String = row.try_get("content").map_err(|e| in_conversation(id, e))?;
            Ok((seq, content))
        })
        .collect()
}

fn conversation_row(row: &SqliteRow) -> Result<ConversationRow> {
    let id: String = row.try_get("id").map_err(sqlite_error)?;
    let get_i64 =
        |column: &str| -> Result<i64> { row.try_get(column).map_err(|e| in_conversation(&id, e)) };
    let get_text = |column: &str| -> Result<String> {
        row.try_get(column).map_err(|e| in_conversation(&id, e))
    };
    Ok(ConversationRow {
        provider: get_text("provider")?,
        model: get_text("model")?,
        metadata: get_text("metadata")?,
        created_at_ms: get_i64("created_at_ms")?,
        updated_at_ms: get_i64("updated_at_ms")?,
        tokens: token_values(row).map_err(|e| prefix(&id, e))?,
        cost: cost_values(row).map_err(|e| prefix(&id, e))?,
        id,
    })
}

/// The usage, cost and update time of a conversation row.
fn totals_of(what: &str, row: &SqliteRow) -> Result<(Usage, Option<Cost>, i64)> {
    let usage = usage_from_columns(what, token_values(row)?)?;
    let cost = cost_from_columns(what, cost_values(row)?)?;
    let updated_at_ms: i64 = row.try_get("updated_at_ms").map_err(sqlite_error)?;
    Ok((usage, cost, updated_at_ms))
}

fn token_values(row: &SqliteRow) -> Result<[i64; 5]> {
    let mut values = [0; 5];
    for (value, column) in values.iter_mut().zip(crate::rows::TOKEN_COLUMNS) {
        *value = row.try_get(column).map_err(sqlite_error)?;
    }
    Ok(values)
}

fn cost_values(row: &SqliteRow) -> Result<[Option<String>; 6]> {
    let mut values: [Option<String>; 6] = Default::default();
    for (value, column) in values.iter_mut().zip(crate::rows::COST_COLUMNS) {
        *value = row.try_get(column).map_err(sqlite_error)?;
    }
    Ok(values)
}

fn sqlite_error(err: sqlx::Error) -> Error {
    db_error("SQLite", err)
}

/// A column that could not be read, as an error naming the conversation.
fn in_conversation(id: &str, err: sqlx::Error) -> Error {
    prefix(id, sqlite_error(err))
}

fn prefix(id: &str, err: Error) -> Error {
    let message = format!("conversation `{id}`: {}", err.message());
    Error::new(err.kind(), message)
}
