//! Integration tests of the stores: one shared suite run on every backend (memory, SQLite in
//! memory and in a file, PostgreSQL), concurrency, crash safety and bad input.
//!
//! PostgreSQL tests use `EXLLM_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each in a schema of its own that is dropped at
//! the end. An unreachable server fails the tests: they never skip.

mod backends;
mod bad_input;
mod concurrency;
#[cfg(feature = "sqlite")]
mod crash;
mod keys;
mod suite;

use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn fresh() -> Self {
        let path = std::env::temp_dir().join(format!("exllm-persistence-{}", random_hex()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 16 random hex digits.
pub fn random_hex() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

#[cfg(feature = "postgres")]
pub mod pg {
    //! A PostgreSQL store in a schema of its own, dropped when the test ends.

    use std::future::Future;
    use std::panic::AssertUnwindSafe;
    use std::sync::Arc;

    use exllm_adapters_persistence::{PostgresStore, Stores, redact_url};
    use futures_util::FutureExt;

    /// The test server's URL.
    pub fn url() -> String {
        std::env::var("EXLLM_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// A fresh schema name for one test.
    pub fn schema() -> String {
        format!("exllm_test_{}", super::random_hex())
    }

    /// The failure when the server cannot be reached: loud, with the fix.
    pub fn unreachable(err: &exllm_core::Error) -> ! {
        panic!(
            "PostgreSQL is needed for these tests but could not be used at {}: {err}. \
             Start it (CI does) or set EXLLM_TEST_DATABASE_URL.",
            redact_url(&url())
        )
    }

    /// Runs `test` on a store in a fresh schema, then drops the schema, even if `test` panics.
    pub async fn with_store<F, Fut>(test: F)
    where
        F: FnOnce(Stores, Arc<PostgresStore>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let store = match PostgresStore::connect_with_schema(&url(), &schema()).await {
            Ok(store) => Arc::new(store),
            Err(err) => unreachable(&err),
        };
        let stores = Stores::from_store(Arc::clone(&store));
        let outcome = AssertUnwindSafe(test(stores, Arc::clone(&store)))
            .catch_unwind()
            .await;
        store.drop_schema().await.expect("drop the test schema");
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
