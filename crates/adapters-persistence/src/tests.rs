//! Unit tests: the in-memory store, ids, UTC days, URL redaction and schema parameters.

use std::sync::Arc;

use exllm_core::{Conversation, ConversationFilter, ConversationStore, ErrorKind, Message, Usage};

use crate::InMemoryStore;
use crate::ids::fresh_conversation_id;
use crate::ledger::utc_day;
use crate::redact_url;

#[tokio::test]
async fn create_append_get_list_delete() {
    let store = InMemoryStore::new();
    let a = store
        .create(Conversation::new("", "mock", "echo"))
        .await
        .unwrap();
    let b = store
        .create(Conversation::new("", "openai", "gpt-4o"))
        .await
        .unwrap();
    assert_ne!(a, b);
    let updated = store
        .append(
            &a,
            vec![Message::user("hi"), Message::assistant("hello")],
            Usage::new(3, 4),
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.messages.len(), 2);
    assert_eq!(updated.usage.total_tokens(), 7);
    let listed: Vec<String> = store
        .list(&ConversationFilter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![b.clone(), a.clone()], "newest first");
    assert!(store.delete(&a).await.unwrap());
    assert!(store.get(&a).await.unwrap().is_none());
    let err = store
        .append(&a, vec![], Usage::default(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_lose_nothing() {
    let store = Arc::new(InMemoryStore::new());
    let id = store
        .create(Conversation::new("", "mock", "echo"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &id,
                    vec![
                        Message::user(format!("q{i}")),
                        Message::assistant(format!("a{i}")),
                    ],
                    Usage::new(1, 1),
                    None,
                )
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let conv = store.get(&id).await.unwrap().unwrap();
    assert_eq!(conv.messages.len(), 100);
    // Each turn landed whole: every question is directly followed by its answer.
    for pair in conv.messages.chunks(2) {
        assert_eq!(
            pair[0].text().replace('q', ""),
            pair[1].text().replace('a', "")
        );
    }
    assert_eq!(conv.usage.input_tokens, 50);
}

#[test]
fn fresh_ids_are_unique_prefixed_and_sort_by_time() {
    let ids: Vec<String> = (0..1000).map(|_| fresh_conversation_id()).collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    for id in &ids {
        assert!(id.starts_with("conv_"), "{id}");
        assert_eq!(id.len(), "conv_".len() + 12 + 16, "{id}");
    }
    // The time prefix never goes backwards.
    for pair in ids.windows(2) {
        assert!(pair[0][..17] <= pair[1][..17], "{pair:?}");
    }
}

#[test]
fn utc_days() {
    assert_eq!(utc_day(0), "1970-01-01");
    assert_eq!(utc_day(86_399_999), "1970-01-01");
    assert_eq!(utc_day(86_400_000), "1970-01-02");
    // 2024-02-29T23:59:59.999Z and the next millisecond.
    assert_eq!(utc_day(1_709_251_199_999), "2024-02-29");
    assert_eq!(utc_day(1_709_251_200_000), "2024-03-01");
    assert_eq!(utc_day(951_782_400_000), "2000-02-29");
    // Far out, no panic.
    assert!(!utc_day(u64::MAX).is_empty());
}

#[test]
fn redacts_passwords_in_urls() {
    assert_eq!(
        redact_url("postgres://alice:s3cret@db.example:5432/app"),
        "postgres://alice:***@db.example:5432/app"
    );
    assert_eq!(
        redact_url("postgresql://db/app?user=bob&password=hunter2&sslmode=disable"),
        "postgresql://db/app?user=bob&password=***&sslmode=disable"
    );
    assert_eq!(
        redact_url("postgres://postgres@127.0.0.1:5432/test"),
        "postgres://postgres@127.0.0.1:5432/test"
    );
    // An `@` inside the password does not leak its tail.
    assert_eq!(
        redact_url("postgres://u:p@ss@host/db"),
        "postgres://u:***@host/db"
    );
    assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
}

#[tokio::test]
async fn memory_ledger_groups_and_filters() {
    use exllm_core::{
        Cost, Decimal, ErrorKind as Kind, GroupBy, Outcome, UsageLedger, UsageQuery, UsageRecord,
    };
    let store = InMemoryStore::new();
    let mut a = UsageRecord::new(1_000, "openai", "gpt-4o");
    a.usage = Usage::new(10, 5);
    a.cost = Some(Cost {
        total_usd: "0.1".parse::<Decimal>().unwrap(),
        ..Cost::default()
    });
    a.caller = Some("key_a".into());
    let mut b = UsageRecord::new(86_400_000, "openai", "gpt-4o-mini");
    b.outcome = Outcome::Error(Kind::RateLimited);
    store.record(a).await.unwrap();
    store.record(b).await.unwrap();
    let mut query = UsageQuery::default();
    query.group_by = GroupBy::Day;
    let days = store.totals(&query).await.unwrap();
    assert_eq!(
        days.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["1970-01-01", "1970-01-02"]
    );
    assert_eq!(days[1].errors, 1);
    assert_eq!(days[1].unpriced, 1);
    query.group_by = GroupBy::Caller;
    let callers = store.totals(&query).await.unwrap();
    assert_eq!(
        callers.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        [crate::NO_CALLER, "key_a"]
    );
    query.until_ms = Some(86_400_000);
    let early = store.totals(&query).await.unwrap();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].cost_usd.to_string(), "0.1");
}

#[cfg(feature = "postgres")]
mod postgres_url {
    use crate::postgres::{passwords, scrub, take_schema, valid_schema};

    #[test]
    fn schema_parameter_is_taken_off_the_url() {
        let (url, schema) = take_schema("postgres://h/db?schema=run_1").unwrap();
        assert_eq!(
            (url.as_str(), schema.as_deref()),
            ("postgres://h/db", Some("run_1"))
        );
        let (url, schema) =
            take_schema("postgres://h/db?sslmode=disable&schema=s&application_name=x").unwrap();
        assert_eq!(url, "postgres://h/db?sslmode=disable&application_name=x");
        assert_eq!(schema.as_deref(), Some("s"));
        let (url, schema) = take_schema("postgres://h/db").unwrap();
        assert_eq!((url.as_str(), schema), ("postgres://h/db", None));
        for bad in ["", "1abc", "a-b", "a\"b", "a;drop", &"x".repeat(64)] {
            assert!(valid_schema(bad).is_err(), "{bad}");
        }
        assert!(take_schema("postgres://h/db?schema=x;y").is_err());
    }

    #[test]
    fn scrubs_raw_and_decoded_passwords() {
        let url = "postgres://u:p%40ssword@h/db?password=other-secret";
        assert_eq!(
            passwords(url),
            ["p%40ssword", "other-secret", "p@ssword", "other-secret"]
        );
        assert_eq!(
            scrub("bad p@ssword and other-secret", url),
            "bad *** and ***"
        );
    }
}
