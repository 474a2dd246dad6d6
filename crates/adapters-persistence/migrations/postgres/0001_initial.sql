-- ExLLM PostgreSQL schema, version 1: conversations, their messages, and the usage ledger.
-- Money is decimal TEXT (exact; summed in Rust), never a float. JSON columns use `json`, not
-- `jsonb`, so that messages are kept byte for byte (jsonb rejects `\u0000` in strings).

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    -- Creation order, to list newest first even within one millisecond.
    ordinal BIGINT GENERATED ALWAYS AS IDENTITY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    metadata JSON NOT NULL DEFAULT '{}',
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost_total_usd TEXT,
    cost_input_usd TEXT,
    cost_cached_input_usd TEXT,
    cost_cache_write_usd TEXT,
    cost_output_usd TEXT,
    cost_reasoning_usd TEXT
);

CREATE INDEX conversations_by_created ON conversations (created_at_ms DESC, ordinal DESC);
CREATE INDEX conversations_by_provider_model ON conversations (provider, model);

-- One row per message; `content` is the core Message as JSON (role, text, images, tool calls,
-- tool results, reasoning). `role` repeats the message's role for queries by hand.
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    role TEXT NOT NULL,
    content JSON NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

-- One row per attempt of a call. `conversation_id` is not a foreign key: the ledger outlives
-- deleted conversations.
CREATE TABLE usage_records (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_total_usd TEXT,
    cost_input_usd TEXT,
    cost_cached_input_usd TEXT,
    cost_cache_write_usd TEXT,
    cost_output_usd TEXT,
    cost_reasoning_usd TEXT,
    latency_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    caller TEXT,
    conversation_id TEXT,
    stream BOOLEAN NOT NULL
);

CREATE INDEX usage_records_by_time ON usage_records (at_ms);
CREATE INDEX usage_records_by_caller ON usage_records (caller, at_ms);
