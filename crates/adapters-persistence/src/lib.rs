//! ExLLM's persistence adapters: where conversations and the usage ledger are kept, behind the
//! core ports [`ConversationStore`](exllm_core::ConversationStore) and
//! [`UsageLedger`](exllm_core::UsageLedger).
//!
//! Three backends, chosen by one store URL with [`open`]:
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory://` | [`InMemoryStore`]: gone when the process ends | always |
//! | `sqlite://PATH`, `sqlite:PATH` | `SqliteStore`: one embedded file (WAL), created on first use | `sqlite` |
//! | `sqlite::memory:` | `SqliteStore` in memory (tests, demos) | `sqlite` |
//! | `postgres://…`, `postgresql://…` | `PostgresStore`; `?schema=NAME` isolates a run in its own schema | `postgres` |
//!
//! Every backend keeps money exact (decimal text, summed in Rust, never `f64`), appends a turn's
//! messages and its usage and cost in one transaction, and decodes corrupt rows into a
//! `Decode` error naming the conversation rather than panicking.

mod ids;
pub mod keys_memory;
#[cfg(feature = "postgres")]
mod keys_postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod keys_rows;
#[cfg(feature = "sqlite")]
mod keys_sqlite;
mod ledger;
pub mod memory;
mod open;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use keys_memory::InMemoryKeyStore;
pub use ledger::NO_CALLER;
pub use memory::InMemoryStore;
pub use open::{Stores, default_sqlite_path, open, redact_url};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(test)]
mod tests;
