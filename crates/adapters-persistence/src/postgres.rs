//! The PostgreSQL store: conversations and the usage ledger in a shared database, for gateways
//! that run as several instances.
//!
//! Opened from a `postgres://` URL. A `schema=NAME` query parameter (or
//! [`PostgresStore::connect_with_schema`]) keeps the tables in schema `NAME`, created when
//! missing, so that test runs or tenants can share one database without seeing each other;
//! [`PostgresStore::drop_schema`] removes such a schema again. Appends lock the conversation's
//! row, so concurrent appends from any number of instances land whole, in a total order.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use exllm_core::{
    Conversation, ConversationFilter, ConversationStore, Cost, Error, ErrorKind, Message, Outcome,
    Result, Usage, UsageLedger, UsageQuery, UsageRecord, UsageTotal,
};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Row, query};

use crate::ids::{fresh_conversation_id, now_ms};
use crate::ledger::{Totals, TotalsRow, add_cost};
use crate::memory::{already_exists, not_found};
use crate::open::redact_url;
use crate::rows::{
    COST_COLUMNS, ConversationRow, TOKEN_COLUMNS, bound_i64, cost_columns, cost_from_columns,
    db_error, decimal, message_json, metadata_json, outcome_text, to_i64, to_u64, token_columns,
    usage_from_columns,
};

/// Connections per store.
const MAX_CONNECTIONS: u32 = 10;
/// How long to wait for a connection (a server that does not answer fails within this).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(15);

/// The schema versions, oldest first; each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "conversations, messages, usage records",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "virtual keys",
        include_str!("../migrations/postgres/0002_virtual_keys.sql"),
    ),
];

/// A conversation store and usage ledger in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    schema: Option<String>,
    /// The URL without its password, named in errors.
    shown: String,
}

impl PostgresStore {
    /// Connects to the database at `url` and migrates it. A `schema=NAME` query parameter
    /// selects (and creates) the schema the tables live in; without it they live in the
    /// server's default (`public`).
    pub async fn connect(url: &str) -> Result<Self> {
        let (url, schema) = take_schema(url)?;
        Self::connect_inner(&url, schema).await
    }

    /// Connects to the database at `url` with the tables in `schema` (created when missing):
    /// the way to isolate a test run or a tenant in a shared database.
    ///
    /// `schema` must be a plain identifier (ASCII letters, digits, `_`; not starting with a
    /// digit; at most 63 bytes).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self> {
        let (url, _) = take_schema(url)?;
        Self::connect_inner(&url, Some(valid_schema(schema)?)).await
    }

    async fn connect_inner(url: &str, schema: Option<String>) -> Result<Self> {
        let shown = redact_url(url);
        let mut options = PgConnectOptions::from_str(url).map_err(|err| {
            Error::config(format!(
                "invalid PostgreSQL URL `{shown}`: {}",
                scrub(&err.to_string(), url)
            ))
        })?;
        if let Some(schema) = &schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        // One plain connection first: a pool retries refused connections until its acquire
        // timeout and then reports only that it timed out, where this fails at once and says
        // why (refused, unknown host, authentication, no such database).
        PgConnection::connect_with(&options)
            .await
            .map_err(|err| connect_error(&shown, url, err))?
            .close()
            .await
            .map_err(|err| connect_error(&shown, url, err))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        let store = Self {
            pool,
            schema,
            shown,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool, for maintenance and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the tables live in, when one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Drops this store's own schema with everything in it, then closes the pool. Meant for
    /// the end of a test run; a store without a schema of its own refuses (it would have to
    /// drop `public`).
    pub async fn drop_schema(&self) -> Result<()> {
        let Some(schema) = &self.schema else {
            return Err(Error::config(
                "this PostgreSQL store has no schema of its own to drop (open it with ?schema=NAME)",
            ));
        };
        // `schema` passed `valid_schema`: a plain identifier, safe to quote into the statement.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&self.pool)
        .await
        .map_err(pg_error)?;
        self.pool.close().await;
        Ok(())
    }

    /// Brings the schema up to the newest version this build knows.
    async fn migrate(&self) -> Result<()> {
        let result = async {
            let mut tx = self.pool.begin().await?;
            // One migrator per schema at a time, across every process sharing the server.
            let lock_key = format!(
                "exllm_migrations:{}",
                self.schema.as_deref().unwrap_or("(default)")
            );
            query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(lock_key)
                .execute(&mut *tx)
                .await?;
            if let Some(schema) = &self.schema {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
                )))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS exllm_migrations (
                    version BIGINT PRIMARY KEY,
                    description TEXT NOT NULL,
                    applied_at_ms BIGINT NOT NULL
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
                     VALUES ($1, $2, $3)",
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
            let err = pg_error(err);
            Error::new(
                err.kind(),
                format!(
                    "cannot prepare the PostgreSQL database `{}`: {}",
                    self.shown,
                    err.message()
                ),
            )
        })?;
        let newest = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > newest {
            return Err(Error::config(format!(
                "the PostgreSQL database `{}` has schema version {current}, newer than this \
                 ExLLM knows ({newest}); upgrade ExLLM",
                self.shown
            )));
        }
        Ok(())
    }
}

macro_rules! conversation_select {
    () => {
        "SELECT id, provider, model, metadata::text AS metadata, created_at_ms, updated_at_ms, \
         input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, \
         cost_total_usd, cost_input_usd, cost_cached_input_usd, cost_cache_write_usd, \
         cost_output_usd, cost_reasoning_usd FROM conversations"
    };
}

#[async_trait]
impl ConversationStore for PostgresStore {
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

        let mut tx = self.pool.begin().await.map_err(pg_error)?;
        let mut insert = query(
            "INSERT INTO conversations (id, provider, model, metadata, created_at_ms,
                updated_at_ms, input_tokens, output_tokens, cached_input_tokens,
                cache_write_tokens, reasoning_tokens, cost_total_usd, cost_input_usd,
                cost_cached_input_usd, cost_cache_write_usd, cost_output_usd, cost_reasoning_usd)
             VALUES ($1, $2, $3, $4::json, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                     $16, $17)",
        )
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
            _ => pg_error(err),
        })?;
        insert_messages(&mut tx, &id, 0, &messages).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(id)
    }

    async fn get(&self, id: &str) -> Result<Option<Conversation>> {
        // One snapshot for the totals and the messages.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(pg_error)?;
        let conversation = load(&mut tx, id).await?;
        tx.commit().await.map_err(pg_error)?;
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
        let mut tx = self.pool.begin().await.map_err(pg_error)?;
        // FOR UPDATE: appends to one conversation queue here, each seeing the one before it.
        let row = query(
            "SELECT input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                    reasoning_tokens, cost_total_usd, cost_input_usd, cost_cached_input_usd,
                    cost_cache_write_usd, cost_output_usd, cost_reasoning_usd, updated_at_ms
             FROM conversations WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg_error)?
        .ok_or_else(|| not_found(id))?;
        let what = format!("conversation `{id}`");
        let mut total_usage = usage_from_columns(&what, token_values(&row)?)?;
        let mut total_cost = cost_from_columns(&what, cost_values(&row)?)?;
        let updated_at_ms: i64 = row.try_get("updated_at_ms").map_err(pg_error)?;
        total_usage.add(&usage);
        if let Some(cost) = &cost {
            add_cost(&mut total_cost, cost)?;
        }
        let next_seq: i64 =
            query("SELECT COALESCE(MAX(seq) + 1, 0) FROM messages WHERE conversation_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(pg_error)?;
        insert_messages(&mut tx, id, next_seq, &encoded).await?;

        let now = to_i64("updated_at_ms", now_ms())?.max(updated_at_ms);
        let mut update = query(
            "UPDATE conversations SET updated_at_ms = $1,
                input_tokens = $2, output_tokens = $3, cached_input_tokens = $4,
                cache_write_tokens = $5, reasoning_tokens = $6,
                cost_total_usd = $7, cost_input_usd = $8, cost_cached_input_usd = $9,
                cost_cache_write_usd = $10, cost_output_usd = $11, cost_reasoning_usd = $12
             WHERE id = $13",
        )
        .bind(now);
        for value in token_columns(&total_usage)? {
            update = update.bind(value);
        }
        for value in cost_columns(total_cost.as_ref()) {
            update = update.bind(value);
        }
        update.bind(id).execute(&mut *tx).await.map_err(pg_error)?;
        let conversation = load(&mut tx, id).await?.ok_or_else(|| not_found(id))?;
        tx.commit().await.map_err(pg_error)?;
        Ok(conversation)
    }

    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>> {
        let limit = filter.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(pg_error)?;
        let rows = query(concat!(
            conversation_select!(),
            " WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR model = $2)
              ORDER BY created_at_ms DESC, ordinal DESC
              LIMIT $3 OFFSET $4"
        ))
        .bind(filter.provider.as_deref())
        .bind(filter.model.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await
        .map_err(pg_error)?;
        let mut conversations = Vec::with_capacity(rows.len());
        for row in &rows {
            let row = conversation_row(row)?;
            let messages = message_rows(&mut tx, &row.id).await?;
            conversations.push(row.into_conversation(messages)?);
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(conversations)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(pg_error)?;
        query("DELETE FROM messages WHERE conversation_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?;
        let deleted = query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(pg_error)?
            .rows_affected();
        tx.commit().await.map_err(pg_error)?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl UsageLedger for PostgresStore {
    async fn record(&self, record: UsageRecord) -> Result<()> {
        let mut insert = query(
            "INSERT INTO usage_records (at_ms, provider, model,
                input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                reasoning_tokens, cost_total_usd, cost_input_usd, cost_cached_input_usd,
                cost_cache_write_usd, cost_output_usd, cost_reasoning_usd,
                latency_ms, outcome, attempt, caller, conversation_id, stream)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     $18, $19, $20)",
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
            .map_err(pg_error)?;
        Ok(())
    }

    async fn totals(&self, query_: &UsageQuery) -> Result<Vec<UsageTotal>> {
        let mut rows = query(
            "SELECT at_ms, provider, model, caller, input_tokens, output_tokens,
                    cached_input_tokens, cache_write_tokens, reasoning_tokens,
                    cost_total_usd, outcome, id
             FROM usage_records
             WHERE ($1::bigint IS NULL OR at_ms >= $1) AND ($2::bigint IS NULL OR at_ms < $2)
               AND ($3::text IS NULL OR caller = $3)",
        )
        .bind(query_.since_ms.map(bound_i64))
        .bind(query_.until_ms.map(bound_i64))
        .bind(query_.caller.as_deref())
        .fetch(&self.pool);
        // Streamed and folded as they come: memory stays one row plus one total per group.
        let mut totals = Totals::new(query_.group_by);
        while let Some(row) = rows.try_next().await.map_err(pg_error)? {
            let id: i64 = row.try_get("id").map_err(pg_error)?;
            let what = format!("usage record {id}");
            let at_ms: i64 = row.try_get("at_ms").map_err(pg_error)?;
            let provider: String = row.try_get("provider").map_err(pg_error)?;
            let model: String = row.try_get("model").map_err(pg_error)?;
            let caller: Option<String> = row.try_get("caller").map_err(pg_error)?;
            let cost: Option<String> = row.try_get("cost_total_usd").map_err(pg_error)?;
            let outcome: String = row.try_get("outcome").map_err(pg_error)?;
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

/// Splits a `schema=NAME` parameter off `url`: the URL sqlx gets, and the schema.
pub(crate) fn take_schema(url: &str) -> Result<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("schema", name)) => schema = Some(valid_schema(name)?),
            _ => kept.push(param),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, schema))
}

/// `name` if it is a plain identifier, which is what makes it safe to quote into DDL.
pub(crate) fn valid_schema(name: &str) -> Result<String> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if plain {
        Ok(name.to_owned())
    } else {
        Err(Error::validation(
            "schema",
            format!(
                "PostgreSQL schema `{name}` is not a plain identifier (ASCII letters, digits and \
                 `_`, not starting with a digit, at most 63 bytes)"
            ),
        ))
    }
}

/// A failed connection as an error that says what was wrong, without the password.
fn connect_error(shown: &str, url: &str, err: sqlx::Error) -> Error {
    let kind = match &err {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01" | "28000") => ErrorKind::Auth,
            // invalid_catalog_name: the database does not exist
            Some("3D000") => ErrorKind::Config,
            _ => ErrorKind::Unavailable,
        },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => ErrorKind::Transport,
        sqlx::Error::Configuration(_) => ErrorKind::Config,
        _ => ErrorKind::Unavailable,
    };
    Error::new(
        kind,
        format!(
            "cannot connect to PostgreSQL at `{shown}`: {}",
            scrub(&err.to_string(), url)
        ),
    )
}

/// `text` with the password of `url` (raw and percent-decoded) replaced by `***`, in case a
/// driver message ever echoes it.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    for password in passwords(url) {
        if password.len() >= 3 {
            out = out.replace(&password, "***");
        }
    }
    out
}

pub(crate) fn passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    if let Some((_, rest)) = head.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            found.push(password.to_owned());
        }
    }
    for param in query.split('&') {
        if let Some((key, value)) = param.split_once('=')
            && key.eq_ignore_ascii_case("password")
        {
            found.push(value.to_owned());
        }
    }
    let decoded: Vec<String> = found.iter().map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Each message as `(role, JSON)`, encoded before any transaction starts.
fn encode_messages(messages: &[Message]) -> Result<Vec<(&'static str, String)>> {
    messages
        .iter()
        .map(|m| Ok((m.role.as_str(), message_json(m)?)))
        .collect()
}

async fn insert_messages(
    conn: &mut PgConnection,
    id: &str,
    first_seq: i64,
    messages: &[(&'static str, String)],
) -> Result<()> {
    for (seq, (role, content)) in (first_seq..).zip(messages) {
        query(
            "INSERT INTO messages (conversation_id, seq, role, content)
             VALUES ($1, $2, $3, $4::json)",
        )
        .bind(id)
        .bind(seq)
        .bind(*role)
        .bind(content)
        .execute(&mut *conn)
        .await
        .map_err(pg_error)?;
    }
    Ok(())
}

/// The conversation `id` with its messages, read on `conn`.
async fn load(conn: &mut PgConnection, id: &str) -> Result<Option<Conversation>> {
    let Some(row) = query(concat!(conversation_select!(), " WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(pg_error)?
    else {
        return Ok(None);
    };
    let row = conversation_row(&row)?;
    let messages = message_rows(conn, id).await?;
    row.into_conversation(messages).map(Some)
}

async fn message_rows(conn: &mut PgConnection, id: &str) -> Result<Vec<(i64, String)>> {
    let rows = query(
        "SELECT seq, content::text AS content FROM messages
         WHERE conversation_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq").map_err(|e| in_conversation(id, e))?;
            let content: String = row.try_get("content").map_err(|e| in_conversation(id, e))?;
            Ok((seq, content))
        })
        .collect()
}

fn conversation_row(row: &PgRow) -> Result<ConversationRow> {
    let id: String = row.try_get("id").map_err(pg_error)?;
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

fn token_values(row: &PgRow) -> Result<[i64; 5]> {
    let mut values = [0; 5];
    for (value, column) in values.iter_mut().zip(TOKEN_COLUMNS) {
        *value = row.try_get(column).map_err(pg_error)?;
    }
    Ok(values)
}

fn cost_values(row: &PgRow) -> Result<[Option<String>; 6]> {
    let mut values: [Option<String>; 6] = Default::default();
    for (value, column) in values.iter_mut().zip(COST_COLUMNS) {
        *value = row.try_get(column).map_err(pg_error)?;
    }
    Ok(values)
}

fn pg_error(err: sqlx::Error) -> Error {
    db_error("PostgreSQL", err)
}

/// A column that could not be read, as an error naming the conversation.
fn in_conversation(id: &str, err: sqlx::Error) -> Error {
    prefix(id, pg_error(err))
}

fn prefix(id: &str, err: Error) -> Error {
    let message = format!("conversation `{id}`: {}", err.message());
    Error::new(err.kind(), message)
}
