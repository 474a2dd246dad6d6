//! One store URL chooses the backend: [`open`] and the [`Stores`] it returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use exllm_core::{ConversationStore, Error, KeyStore, Result, UsageLedger};

use crate::keys_memory::InMemoryKeyStore;
use crate::memory::InMemoryStore;

/// The store URLs [`open`] accepts, for error messages.
const ACCEPTED: &str = "sqlite://PATH (or sqlite:PATH), sqlite::memory:, postgres://… \
                        (or postgresql://…), memory://";

/// The conversation store and the usage ledger of one backend, as the facade holds them.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Where conversations are kept.
    pub conversations: Arc<dyn ConversationStore>,
    /// Where every call's usage and cost is recorded.
    pub ledger: Arc<dyn UsageLedger>,
    /// Where the gateway's virtual keys are kept (hashed).
    pub keys: Arc<dyn KeyStore>,
}

impl Stores {
    /// Every port served by one store.
    pub fn from_store<S>(store: Arc<S>) -> Self
    where
        S: ConversationStore + UsageLedger + KeyStore + 'static,
    {
        Self {
            conversations: Arc::clone(&store) as Arc<dyn ConversationStore>,
            ledger: Arc::clone(&store) as Arc<dyn UsageLedger>,
            keys: store,
        }
    }

    /// A fresh in-memory store.
    pub fn in_memory() -> Self {
        let store = Arc::new(InMemoryStore::new());
        Self {
            conversations: Arc::clone(&store) as Arc<dyn ConversationStore>,
            ledger: store,
            keys: Arc::new(InMemoryKeyStore::new()),
        }
    }
}

/// Opens the stores a URL names, creating and migrating the database when needed:
///
/// - `sqlite://PATH` or `sqlite:PATH`: an SQLite file (feature `sqlite`). The rest of the URL
///   is the path verbatim (`sqlite:///var/lib/exllm.db` is absolute, `sqlite://exllm.db`
///   relative); the file and its directory are created on first use.
/// - `sqlite::memory:`: an SQLite database in memory (feature `sqlite`).
/// - `postgres://…` or `postgresql://…`: PostgreSQL (feature `postgres`); add `?schema=NAME` to
///   keep the tables in schema `NAME` (created when missing), e.g. to isolate a test run.
/// - `memory://`: in memory, gone when the process ends.
///
/// An unknown scheme, or a backend this build lacks, is a `Config` error naming the scheme and
/// the accepted ones. A database that cannot be opened is an error naming what is wrong
/// (the path, a permission, an unreachable server); a password in the URL is never shown.
pub async fn open(url: &str) -> Result<Stores> {
    let url = url.trim();
    if url == "memory://" || url == "memory:" {
        return Ok(Stores::in_memory());
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        // `sqlite::memory:` (and `sqlite://:memory:`): SQLite's own name for a memory database.
        if path == ":memory:" {
            return open_sqlite_memory().await;
        }
        if path.is_empty() {
            return Err(Error::config(
                "the SQLite store URL has no path: write sqlite://PATH or sqlite::memory:",
            ));
        }
        if path.contains('?') {
            return Err(Error::config(format!(
                "the SQLite store URL `{url}` has query parameters, which are not supported: \
                 write sqlite://PATH (the file is created when missing)"
            )));
        }
        return open_sqlite(Path::new(path)).await;
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return open_postgres(url).await;
    }
    Err(match url.split_once(':') {
        Some((scheme, _)) if !scheme.is_empty() => Error::config(format!(
            "unknown store URL scheme `{scheme}`; accepted: {ACCEPTED}"
        )),
        _ => Error::config(format!(
            "the store URL has no scheme; accepted: {ACCEPTED} \
             (for a file, write sqlite://{})",
            if url.is_empty() { "PATH" } else { url }
        )),
    })
}

/// Where the SQLite database lives by default inside the application's data directory.
pub fn default_sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("exllm.db")
}

/// `url` with any password replaced by `***` (in the user info and in a `password=` query
/// parameter), safe to show in messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            out.push_str(scheme);
            out.push_str("://");
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(head),
    }
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(path: &Path) -> Result<Stores> {
    let store = crate::sqlite::SqliteStore::open(path).await?;
    Ok(Stores::from_store(Arc::new(store)))
}

#[cfg(feature = "sqlite")]
async fn open_sqlite_memory() -> Result<Stores> {
    let store = crate::sqlite::SqliteStore::in_memory().await?;
    Ok(Stores::from_store(Arc::new(store)))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_path: &Path) -> Result<Stores> {
    Err(missing_feature("sqlite", "SQLite"))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite_memory() -> Result<Stores> {
    Err(missing_feature("sqlite", "SQLite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Stores> {
    let store = crate::postgres::PostgresStore::connect(url).await?;
    Ok(Stores::from_store(Arc::new(store)))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str) -> Result<Stores> {
    Err(missing_feature("postgres", "PostgreSQL"))
}

#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn missing_feature(feature: &str, name: &str) -> Error {
    let mut here = vec!["memory://"];
    if cfg!(feature = "sqlite") {
        here.push("sqlite://PATH");
    }
    if cfg!(feature = "postgres") {
        here.push("postgres://…");
    }
    Error::config(format!(
        "this build of ExLLM has no {name} store (the `{feature}` feature of \
         exllm-adapters-persistence is off); accepted here: {}",
        here.join(", ")
    ))
}
