//! Tests of the in-memory store.

use std::sync::Arc;

use exllm_core::{Conversation, ConversationFilter, ConversationStore, ErrorKind, Message, Usage};

use crate::InMemoryStore;

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
