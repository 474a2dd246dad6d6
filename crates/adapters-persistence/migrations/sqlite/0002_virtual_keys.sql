-- ExLLM SQLite schema, version 2: the gateway's virtual keys.
-- Only the key's SHA-256 (hex) is stored, never the key. Money is decimal TEXT (exact; changed
-- in Rust inside one BEGIN IMMEDIATE transaction), never REAL.

CREATE TABLE virtual_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    budget_usd TEXT,
    spent_usd TEXT NOT NULL DEFAULT '0',
    requests_per_minute INTEGER,
    tokens_per_minute INTEGER,
    -- The allowed model addresses or aliases as a JSON array; empty allows every model.
    allowed_models TEXT NOT NULL DEFAULT '[]',
    expires_at_ms INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
);

CREATE INDEX virtual_keys_by_created ON virtual_keys (created_at_ms);
