-- ExLLM SQLite schema, version 1: conversations, their messages, and the usage ledger.
-- Money is decimal TEXT (exact; summed in Rust), never REAL.

CREATE TABLE conversations (
    id TEXT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_total_usd TEXT,
    cost_input_usd TEXT,
    cost_cached_input_usd TEXT,
    cost_cache_write_usd TEXT,
    cost_output_usd TEXT,
    cost_reasoning_usd TEXT
);

CREATE INDEX conversations_by_created ON conversations (created_at_ms);
CREATE INDEX conversations_by_provider_model ON conversations (provider, model);

-- One row per message; `content` is the core Message as JSON (role, text, images, tool calls,
-- tool results, reasoning). `role` repeats the message's role for queries by hand.
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;

-- One row per attempt of a call. `conversation_id` is not a foreign key: the ledger outlives
-- deleted conversations.
CREATE TABLE usage_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_total_usd TEXT,
    cost_input_usd TEXT,
    cost_cached_input_usd TEXT,
    cost_cache_write_usd TEXT,
    cost_output_usd TEXT,
    cost_reasoning_usd TEXT,
    latency_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    caller TEXT,
    conversation_id TEXT,
    stream INTEGER NOT NULL
);

CREATE INDEX usage_records_by_time ON usage_records (at_ms);
CREATE INDEX usage_records_by_caller ON usage_records (caller, at_ms);
