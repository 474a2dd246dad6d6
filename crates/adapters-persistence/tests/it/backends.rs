//! The shared suite on every backend, each opened the way the app opens it: by URL.

use exllm_adapters_persistence::open;

use crate::suite;

#[tokio::test]
async fn memory() {
    suite::run(open("memory://").await.unwrap()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_in_memory() {
    suite::run(open("sqlite::memory:").await.unwrap()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_file_and_reopen() {
    use exllm_core::ConversationFilter;

    let dir = crate::TempDir::fresh();
    // A directory that does not exist yet: the store creates it.
    let path = dir.path().join("nested/dir/exllm.db");
    let url = format!("sqlite://{}", path.display());
    suite::run(open(&url).await.unwrap()).await;
    assert!(path.is_file());

    // Reopened (as `sqlite:PATH` this time), everything is still there and the schema is not
    // migrated twice.
    let reopened = open(&format!("sqlite:{}", path.display())).await.unwrap();
    let all = reopened
        .conversations
        .list(&ConversationFilter::all())
        .await
        .unwrap();
    assert!(all.len() >= 8, "{}", all.len());
    let with_tools = all.iter().find(|c| c.provider == "anthropic").unwrap();
    assert_eq!(with_tools.messages.len(), 8);

    let pool = exllm_adapters_persistence::SqliteStore::open(&path)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM exllm_migrations")
        .fetch_all(pool.pool())
        .await
        .unwrap();
    assert_eq!(versions, [1, 2]);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres() {
    crate::pg::with_store(|stores, _| suite::run(stores)).await;
}

/// `?schema=NAME` on the URL, as the CLI's tests use it, isolates and creates the schema.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_by_url_with_schema() {
    use exllm_adapters_persistence::PostgresStore;

    let schema = crate::pg::schema();
    let url = format!("{}?schema={schema}", crate::pg::url());
    let stores = match open(&url).await {
        Ok(stores) => stores,
        Err(err) => crate::pg::unreachable(&err),
    };
    let outcome =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(suite::run(stores)))
            .await;
    let store = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(store.schema(), Some(schema.as_str()));
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(&schema)
    .fetch_all(store.pool())
    .await
    .unwrap();
    store.drop_schema().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(
        tables,
        [
            "conversations",
            "exllm_migrations",
            "messages",
            "usage_records",
            "virtual_keys"
        ]
    );
}
