//! Fifty tasks appending to one conversation at once: no message is lost, and every turn lands
//! whole, in one total order.

use std::collections::BTreeSet;

use exllm_adapters_persistence::Stores;
use exllm_core::Conversation;

use crate::suite::{cost, dec, tool_turn, turn_tag, usage};

const TASKS: usize = 50;

async fn fifty_appenders(stores: Stores) {
    let id = stores
        .conversations
        .create(Conversation::new("", "mock", "echo"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let stores = stores.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            stores
                .conversations
                .append(
                    &id,
                    tool_turn(&format!("t{i}")),
                    usage(1),
                    Some(cost("0.0001")),
                )
                .await
                .map(|c| c.messages.len())
        }));
    }
    let mut lengths = BTreeSet::new();
    for task in tasks {
        let len = task.await.unwrap().unwrap();
        // Each append saw a distinct, whole prefix: its own turn last.
        assert_eq!(len % 4, 0, "{len}");
        assert!(lengths.insert(len), "two appends saw the same length {len}");
    }
    assert_eq!(lengths.len(), TASKS);

    let conversation = stores.conversations.get(&id).await.unwrap().unwrap();
    assert_eq!(conversation.messages.len(), TASKS * 4);
    let tags: BTreeSet<String> = conversation.messages.chunks(4).map(turn_tag).collect();
    let expected: BTreeSet<String> = (0..TASKS).map(|i| format!("t{i}")).collect();
    assert_eq!(tags, expected, "every turn exactly once");
    assert_eq!(conversation.usage, usage(TASKS as u64));
    assert_eq!(conversation.cost.unwrap().total_usd, dec("0.005"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    fifty_appenders(Stores::in_memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file() {
    let dir = crate::TempDir::fresh();
    let url = format!("sqlite://{}", dir.path().join("concurrent.db").display());
    fifty_appenders(exllm_adapters_persistence::open(&url).await.unwrap()).await;
}

/// Two stores on one file, as two processes would have: appends still queue on the file.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_two_pools() {
    use exllm_adapters_persistence::open;
    let dir = crate::TempDir::fresh();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let (a, b) = tokio::join!(open(&url), open(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let id = a
        .conversations
        .create(Conversation::new("", "mock", "echo"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let stores = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            stores
                .conversations
                .append(
                    &id,
                    tool_turn(&format!("t{i}")),
                    usage(1),
                    Some(cost("0.5")),
                )
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let conversation = b.conversations.get(&id).await.unwrap().unwrap();
    let tags: BTreeSet<String> = conversation.messages.chunks(4).map(turn_tag).collect();
    assert_eq!(tags.len(), 20);
    assert_eq!(conversation.cost.unwrap().total_usd, dec("10"));
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    crate::pg::with_store(|stores, _| fifty_appenders(stores)).await;
}
