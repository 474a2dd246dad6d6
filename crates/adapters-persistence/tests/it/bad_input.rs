//! Bad input: unknown schemes, databases that cannot be opened, corrupt rows. Each is a clear,
//! typed error; none panics or leaks a password.

use exllm_adapters_persistence::open;
use exllm_core::ErrorKind;

#[tokio::test]
async fn unknown_scheme_names_it_and_the_accepted_ones() {
    let err = open("mysql://root:topsecret@localhost/db")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let message = err.to_string();
    assert!(message.contains("`mysql`"), "{message}");
    for accepted in ["sqlite://", "sqlite::memory:", "postgres://", "memory://"] {
        assert!(message.contains(accepted), "{message}");
    }
    assert!(!message.contains("topsecret"), "{message}");

    let err = open("exllm.db").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("sqlite://exllm.db"), "{err}");
    let err = open("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::sync::Arc;

    use exllm_adapters_persistence::{SqliteStore, Stores, open};
    use exllm_core::{Conversation, ErrorKind, Message, Usage};

    use crate::TempDir;
    use crate::suite::cost;

    #[tokio::test]
    async fn empty_path_and_query_parameters_are_refused() {
        for url in ["sqlite://", "sqlite:"] {
            let err = open(url).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
        }
        let err = open("sqlite://x.db?mode=ro").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("query parameters"), "{err}");
    }

    #[tokio::test]
    async fn a_directory_where_the_file_should_be() {
        let dir = TempDir::fresh();
        let err = open(&format!("sqlite://{}", dir.path().display()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("directory"), "{message}");
    }

    /// A parent "directory" that is a file cannot be created, whoever runs the test (root
    /// included, which writes anywhere else).
    #[tokio::test]
    async fn a_parent_that_cannot_be_created() {
        let dir = TempDir::fresh();
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "a file, not a directory").unwrap();
        let path = blocker.join("sub/exllm.db");
        let err = open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let message = err.to_string();
        assert!(
            message.contains(&blocker.join("sub").display().to_string()),
            "{message}"
        );
        assert!(message.contains("cannot create the directory"), "{message}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database() {
        let dir = TempDir::fresh();
        let path = dir.path().join("notes.db");
        std::fs::write(
            &path,
            "these are my notes, not an SQLite file\n".repeat(200),
        )
        .unwrap();
        let err = open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("not a database"), "{message}");
        // Nothing was written over the user's file.
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("these are my notes")
        );
    }

    async fn store_with_one_turn(dir: &TempDir) -> (Arc<SqliteStore>, Stores, String) {
        let store = Arc::new(SqliteStore::open(dir.path().join("x.db")).await.unwrap());
        let stores = Stores::from_store(Arc::clone(&store));
        let id = stores
            .conversations
            .create(Conversation::new("", "mock", "echo"))
            .await
            .unwrap();
        stores
            .conversations
            .append(
                &id,
                vec![Message::user("hi"), Message::assistant("hello")],
                Usage::new(1, 1),
                Some(cost("0.1")),
            )
            .await
            .unwrap();
        (store, stores, id)
    }

    #[tokio::test]
    async fn corrupt_message_json_is_a_decode_error_naming_the_conversation() {
        let dir = TempDir::fresh();
        let (store, stores, id) = store_with_one_turn(&dir).await;
        sqlx::query(
            "UPDATE messages SET content = '{\"role\": \"user\", \"content\": [' WHERE seq = 1",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let err = stores.conversations.get(&id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains(&id), "{err}");
        assert!(err.raw_body().unwrap().starts_with("{\"role\""), "{err:?}");
        let err = stores
            .conversations
            .list(&exllm_core::ConversationFilter::all())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains(&id), "{err}");
        // Appending fails the same way and adds nothing.
        let err = stores
            .conversations
            .append(&id, vec![Message::user("more")], Usage::new(5, 5), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(count, 2, "the failed append was rolled back");
        // Deleting still works: a corrupt conversation can be cleaned up.
        assert!(stores.conversations.delete(&id).await.unwrap());
    }

    #[tokio::test]
    async fn corrupt_money_and_counts_are_decode_errors() {
        let dir = TempDir::fresh();
        let (store, stores, id) = store_with_one_turn(&dir).await;
        sqlx::query("UPDATE conversations SET cost_total_usd = 'lots'")
            .execute(store.pool())
            .await
            .unwrap();
        let err = stores.conversations.get(&id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains(&id), "{err}");
        assert!(err.to_string().contains("cost_total_usd"), "{err}");

        sqlx::query("UPDATE conversations SET cost_total_usd = '0.1', input_tokens = -5")
            .execute(store.pool())
            .await
            .unwrap();
        let err = stores.conversations.get(&id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("input_tokens"), "{err}");

        sqlx::query("UPDATE conversations SET input_tokens = 1, metadata = '[1, 2]'")
            .execute(store.pool())
            .await
            .unwrap();
        let err = stores.conversations.get(&id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("metadata"), "{err}");
    }

    #[tokio::test]
    async fn counts_past_the_storable_range_are_refused_whole() {
        let dir = TempDir::fresh();
        let (store, stores, id) = store_with_one_turn(&dir).await;
        let err = stores
            .conversations
            .append(
                &id,
                vec![Message::user("huge")],
                Usage::new(u64::MAX, 0),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(count, 2, "nothing of the refused turn was written");
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use exllm_adapters_persistence::{PostgresStore, open};
    use exllm_core::{Conversation, ErrorKind, Message, Usage};

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_the_password() {
        // Port 1 on localhost refuses at once.
        let url = "postgres://postgres:hunter2secret@127.0.0.1:1/test?password=hunter2secret";
        let err = open(url).await.unwrap_err();
        let message = format!("{err} {err:?}");
        assert!(!message.contains("hunter2secret"), "{message}");
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert_eq!(err.kind(), ErrorKind::Transport, "{message}");
    }

    /// A store opened with a password keeps it out of its `Debug` (the test server trusts
    /// local connections, so any password works; a URL with its own password is used as is).
    #[tokio::test]
    async fn a_password_never_shows_in_debug() {
        let url = crate::pg::url();
        let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
        let (userinfo, host) = rest.split_once('@').expect("a URL with a user");
        let (url, password) = match userinfo.split_once(':') {
            Some((_, password)) => (url.clone(), password.to_owned()),
            None => (
                format!("{scheme}://{userinfo}:pw-not-to-show@{host}"),
                "pw-not-to-show".to_owned(),
            ),
        };
        let store = match PostgresStore::connect_with_schema(&url, &crate::pg::schema()).await {
            Ok(store) => std::sync::Arc::new(store),
            Err(err) => crate::pg::unreachable(&err),
        };
        let stores = exllm_adapters_persistence::Stores::from_store(store.clone());
        let shown = format!("{stores:?} {store:?}");
        store.drop_schema().await.unwrap();
        assert!(!shown.contains(&password), "{shown}");
    }

    #[tokio::test]
    async fn a_missing_database_is_a_config_error() {
        let base = crate::pg::url();
        let Some((server, _db)) = base.rsplit_once('/') else {
            panic!("EXLLM_TEST_DATABASE_URL has no database: {base}");
        };
        let err = open(&format!(
            "{server}/exllm_no_such_database_{}",
            crate::random_hex()
        ))
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("exllm_no_such_database"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_schema_name_is_refused_before_connecting() {
        let err = PostgresStore::connect_with_schema(&crate::pg::url(), "x; DROP TABLE y")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        let err = open(&format!("{}?schema=a-b", crate::pg::url()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
    }

    /// PostgreSQL's `json` column refuses invalid JSON, so corruption there is JSON of the wrong
    /// shape: still a decode error naming the conversation.
    #[tokio::test]
    async fn a_message_of_the_wrong_shape_is_a_decode_error() {
        crate::pg::with_store(|stores, store| async move {
            let id = stores
                .conversations
                .create(Conversation::new("", "mock", "echo"))
                .await
                .unwrap();
            stores
                .conversations
                .append(&id, vec![Message::user("hi")], Usage::new(1, 1), None)
                .await
                .unwrap();
            sqlx::query("UPDATE messages SET content = '{\"role\": 42}'::json")
                .execute(store.pool())
                .await
                .unwrap();
            let err = stores.conversations.get(&id).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode);
            assert!(err.to_string().contains(&id), "{err}");
        })
        .await;
    }
}
