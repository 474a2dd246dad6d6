//! What the SQL backends share: how domain values become columns and columns become domain
//! values again, and how database errors become ExLLM errors.

use exllm_core::{Conversation, Cost, Decimal, Error, ErrorKind, Message, Outcome, Result, Usage};
use serde_json::{Map, Value};

/// At most this much of a corrupt value is kept in a decode error.
const RAW_LIMIT: usize = 2048;

/// A `u64` as the `BIGINT`/`INTEGER` both databases store (signed 64 bits).
pub(crate) fn to_i64(field: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::validation(
            field,
            format!(
                "{field} = {value} exceeds what the store can keep (at most {})",
                i64::MAX
            ),
        )
    })
}

/// A filter bound as `BIGINT`: values past the range cover everything stored anyway.
pub(crate) fn bound_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored count back as a `u64`; a negative one is a corrupt row.
pub(crate) fn to_u64(what: &str, field: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        Error::decode(
            format!("{what}: column `{field}` holds a negative count ({value})"),
            value.to_string(),
        )
    })
}

/// The six cost columns (`cost_total_usd` … `cost_reasoning_usd`) of an optional cost:
/// exact decimal text, all `NULL` when unpriced.
pub(crate) fn cost_columns(cost: Option<&Cost>) -> [Option<String>; 6] {
    match cost {
        None => Default::default(),
        Some(c) => [
            c.total_usd,
            c.input_usd,
            c.cached_input_usd,
            c.cache_write_usd,
            c.output_usd,
            c.reasoning_usd,
        ]
        .map(|d| Some(d.to_string())),
    }
}

/// The names of the cost columns, in [`cost_columns`] order.
pub(crate) const COST_COLUMNS: [&str; 6] = [
    "cost_total_usd",
    "cost_input_usd",
    "cost_cached_input_usd",
    "cost_cache_write_usd",
    "cost_output_usd",
    "cost_reasoning_usd",
];

/// A cost back from its columns; `what` names the row for errors.
pub(crate) fn cost_from_columns(what: &str, columns: [Option<String>; 6]) -> Result<Option<Cost>> {
    if columns.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut values = [Decimal::ZERO; 6];
    for ((value, column), name) in values.iter_mut().zip(columns).zip(COST_COLUMNS) {
        if let Some(text) = column {
            *value = decimal(what, name, &text)?;
        }
    }
    let [
        total_usd,
        input_usd,
        cached_input_usd,
        cache_write_usd,
        output_usd,
        reasoning_usd,
    ] = values;
    Ok(Some(Cost {
        total_usd,
        input_usd,
        cached_input_usd,
        cache_write_usd,
        output_usd,
        reasoning_usd,
    }))
}

/// One exact decimal from its text.
pub(crate) fn decimal(what: &str, column: &str, text: &str) -> Result<Decimal> {
    text.trim().parse::<Decimal>().map_err(|err| {
        Error::decode(
            format!("{what}: column `{column}` is not a decimal: {err}"),
            raw(text),
        )
    })
}

/// How an outcome is stored: `ok`, or the error kind's snake_case name.
pub(crate) fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Error(kind) => kind.as_str(),
    }
}

/// A message as stored: the core `Message` as JSON, tool calls and results included.
pub(crate) fn message_json(message: &Message) -> Result<String> {
    Ok(serde_json::to_string(message)?)
}

/// A stored message back; a corrupt row is a decode error naming the conversation.
pub(crate) fn message_from_json(conversation_id: &str, seq: i64, text: &str) -> Result<Message> {
    serde_json::from_str(text).map_err(|err| {
        Error::decode(
            format!(
                "conversation `{conversation_id}`: message {seq} is not a valid message: {err}"
            ),
            raw(text),
        )
    })
}

/// Metadata as stored (a JSON object).
pub(crate) fn metadata_json(metadata: &Map<String, Value>) -> Result<String> {
    Ok(serde_json::to_string(metadata)?)
}

/// The columns of one `conversations` row, read by a backend.
#[derive(Debug)]
pub(crate) struct ConversationRow {
    pub id: String,
    pub provider: String,
    pub model: String,
    pub metadata: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub tokens: [i64; 5],
    pub cost: [Option<String>; 6],
}

/// The names of the token columns, in [`ConversationRow::tokens`] order.
pub(crate) const TOKEN_COLUMNS: [&str; 5] = [
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
];

/// The token columns of a usage, in [`TOKEN_COLUMNS`] order.
pub(crate) fn token_columns(usage: &Usage) -> Result<[i64; 5]> {
    Ok([
        to_i64("input_tokens", usage.input_tokens)?,
        to_i64("output_tokens", usage.output_tokens)?,
        to_i64("cached_input_tokens", usage.cached_input_tokens)?,
        to_i64("cache_write_tokens", usage.cache_write_tokens)?,
        to_i64("reasoning_tokens", usage.reasoning_tokens)?,
    ])
}

/// A usage back from its token columns.
pub(crate) fn usage_from_columns(what: &str, tokens: [i64; 5]) -> Result<Usage> {
    let [input, output, cached, written, reasoning] = tokens;
    Ok(Usage {
        input_tokens: to_u64(what, TOKEN_COLUMNS[0], input)?,
        output_tokens: to_u64(what, TOKEN_COLUMNS[1], output)?,
        cached_input_tokens: to_u64(what, TOKEN_COLUMNS[2], cached)?,
        cache_write_tokens: to_u64(what, TOKEN_COLUMNS[3], written)?,
        reasoning_tokens: to_u64(what, TOKEN_COLUMNS[4], reasoning)?,
    })
}

impl ConversationRow {
    /// The conversation, with `messages` (its rows as `(seq, json)`, in order).
    pub fn into_conversation(self, messages: Vec<(i64, String)>) -> Result<Conversation> {
        let what = format!("conversation `{}`", self.id);
        let metadata = match serde_json::from_str::<Value>(&self.metadata) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            Ok(_) => {
                return Err(Error::decode(
                    format!("{what}: metadata is not a JSON object"),
                    raw(&self.metadata),
                ));
            }
            Err(err) => {
                return Err(Error::decode(
                    format!("{what}: metadata is not valid JSON: {err}"),
                    raw(&self.metadata),
                ));
            }
        };
        let mut conversation = Conversation::new(self.id, self.provider, self.model);
        conversation.usage = usage_from_columns(&what, self.tokens)?;
        conversation.cost = cost_from_columns(&what, self.cost)?;
        conversation.metadata = metadata;
        conversation.created_at_ms = to_u64(&what, "created_at_ms", self.created_at_ms)?;
        conversation.updated_at_ms = to_u64(&what, "updated_at_ms", self.updated_at_ms)?;
        conversation.messages = messages
            .iter()
            .map(|(seq, text)| message_from_json(&conversation.id, *seq, text))
            .collect::<Result<_>>()?;
        Ok(conversation)
    }
}

/// A database error as an ExLLM error. `backend` names the store (`SQLite`, `PostgreSQL`);
/// no query text or connection string is included, so no secret can leak.
pub(crate) fn db_error(backend: &str, err: sqlx::Error) -> Error {
    use sqlx::Error as E;
    let kind = match &err {
        E::Configuration(_) | E::InvalidArgument(_) => ErrorKind::Config,
        E::Io(_) | E::Tls(_) => ErrorKind::Transport,
        E::PoolTimedOut => ErrorKind::Timeout,
        E::PoolClosed | E::WorkerCrashed => ErrorKind::Unavailable,
        E::Database(db)
            if db.is_unique_violation()
                || db.is_foreign_key_violation()
                || db.is_check_violation() =>
        {
            ErrorKind::Validation
        }
        E::Protocol(_)
        | E::RowNotFound
        | E::TypeNotFound { .. }
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnNotFound(_)
        | E::ColumnDecode { .. }
        | E::Encode(_)
        | E::Decode(_) => ErrorKind::Decode,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, format!("{backend} store: {err}"))
}

/// The first bytes of a corrupt value, cut on a character boundary.
fn raw(text: &str) -> String {
    if text.len() <= RAW_LIMIT {
        return text.to_owned();
    }
    let mut end = RAW_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
