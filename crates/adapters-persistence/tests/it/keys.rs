//! The virtual-key suite on every backend (memory, SQLite file, PostgreSQL in a schema of its
//! own): create, find by hash, list, revoke, exact spend, and budgets that concurrent
//! reservations never overspend.

use std::sync::Arc;

use exllm_adapters_persistence::{Stores, open};
use exllm_core::{ErrorKind, KeyStore, Reservation, VirtualKey};

use crate::suite::dec;

/// Everything, on a fresh, empty store.
async fn run(stores: Stores) {
    let keys = stores.keys;
    create_find_list_revoke(&keys).await;
    spend_is_exact(&keys).await;
    budgets_hold_under_concurrency(&keys).await;
    unknown_ids(&keys).await;
}

fn key(id: &str, hash: &str, created: u64) -> VirtualKey {
    let mut key = VirtualKey::new(id, format!("name of {id}"), hash);
    key.created_at_ms = created;
    key
}

async fn create_find_list_revoke(keys: &Arc<dyn KeyStore>) {
    let mut first = key("key_a", "aa11", 1_000);
    first.budget_usd = Some(dec("12.5"));
    first.requests_per_minute = Some(60);
    first.tokens_per_minute = Some(10_000);
    first.allowed_models = vec!["openai/gpt-4o-mini".into(), "fast".into()];
    first.expires_at_ms = Some(9_000_000_000_000);
    keys.create(first.clone()).await.unwrap();
    keys.create(key("key_b", "bb22", 2_000)).await.unwrap();

    assert_eq!(
        keys.find_by_hash("aa11").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(keys.find_by_hash("nope").await.unwrap(), None);

    // A taken id or hash is refused, and nothing changes.
    let dup = keys.create(key("key_a", "cc33", 3_000)).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Validation);
    let dup = keys.create(key("key_c", "aa11", 3_000)).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Validation);

    let ids: Vec<String> = keys
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["key_a", "key_b"]);

    assert!(keys.revoke("key_b").await.unwrap());
    assert!(!keys.revoke("key_missing").await.unwrap());
    let revoked = keys.find_by_hash("bb22").await.unwrap().unwrap();
    assert!(revoked.revoked);
    assert!(!keys.find_by_hash("aa11").await.unwrap().unwrap().revoked);
}

async fn spend_is_exact(keys: &Arc<dyn KeyStore>) {
    keys.create(key("key_spend", "dd44", 4_000)).await.unwrap();
    for _ in 0..10 {
        keys.add_spend("key_spend", dec("0.1")).await.unwrap();
    }
    // Ten times 0.1 is exactly 1 (no float anywhere).
    let spent = keys
        .add_spend("key_spend", dec("0.000000001"))
        .await
        .unwrap();
    assert_eq!(spent, Some(dec("1.000000001")));
    // Settling back below what was spent never goes under zero.
    let spent = keys.add_spend("key_spend", dec("-5")).await.unwrap();
    assert_eq!(spent, Some(dec("0")));
    // Without a budget every reservation is granted.
    assert_eq!(
        keys.reserve("key_spend", dec("1000")).await.unwrap(),
        Reservation::Reserved(dec("1000"))
    );
}

async fn budgets_hold_under_concurrency(keys: &Arc<dyn KeyStore>) {
    let mut limited = key("key_budget", "ee55", 5_000);
    limited.budget_usd = Some(dec("0.25"));
    keys.create(limited).await.unwrap();

    // Fifty concurrent reservations of 0.01 against 0.25: exactly 25 win.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let keys = Arc::clone(keys);
            tokio::spawn(async move { keys.reserve("key_budget", dec("0.01")).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Reservation::Reserved(_)) {
            granted += 1;
        }
    }
    assert_eq!(granted, 25);
    let stored = keys.find_by_hash("ee55").await.unwrap().unwrap();
    assert_eq!(stored.spent_usd, dec("0.25"));

    // The budget is reached: even a zero estimate is refused.
    assert_eq!(
        keys.reserve("key_budget", dec("0")).await.unwrap(),
        Reservation::Exceeded(dec("0.25"))
    );
    // Settling a cheaper actual cost frees budget again.
    keys.add_spend("key_budget", dec("-0.005")).await.unwrap();
    assert_eq!(
        keys.reserve("key_budget", dec("0.005")).await.unwrap(),
        Reservation::Reserved(dec("0.25"))
    );
    assert!(matches!(
        keys.reserve("key_budget", dec("0.0001")).await.unwrap(),
        Reservation::Exceeded(_)
    ));
}

async fn unknown_ids(keys: &Arc<dyn KeyStore>) {
    assert_eq!(keys.add_spend("key_missing", dec("1")).await.unwrap(), None);
    assert_eq!(
        keys.reserve("key_missing", dec("1")).await.unwrap(),
        Reservation::Missing
    );
}

#[tokio::test]
async fn memory() {
    run(open("memory://").await.unwrap()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_and_reopen() {
    let dir = crate::TempDir::fresh();
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    run(open(&url).await.unwrap()).await;
    // Keys survive a reopen, hashed as they were stored.
    let reopened = open(&url).await.unwrap();
    let found = reopened.keys.find_by_hash("aa11").await.unwrap().unwrap();
    assert_eq!(found.budget_usd, Some(dec("12.5")));
    assert_eq!(found.allowed_models, ["openai/gpt-4o-mini", "fast"]);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    crate::pg::with_store(|stores, _| run(stores)).await;
}
