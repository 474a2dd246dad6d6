//! An in-memory conversation store: the default for library users and tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use exllm_core::{
    Conversation, ConversationFilter, ConversationStore, Cost, Error, ErrorKind, Message, Result,
    Usage,
};
use tokio::sync::Mutex;

/// Conversations in a map behind one lock; gone when the process ends.
///
/// Appends are atomic: concurrent sends to one conversation each land whole, in a total order.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    conversations: Mutex<BTreeMap<String, Stored>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Stored {
    seq: u64,
    conversation: Conversation,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh_id(&self, seq: u64) -> String {
        let millis = now_ms();
        // Time-prefixed so ids sort by creation and stay unique across restarts of a process
        // that exported them; the sequence keeps them unique within one.
        format!("conv_{millis:x}{seq:04x}")
    }
}

#[async_trait]
impl ConversationStore for InMemoryStore {
    async fn create(&self, mut conversation: Conversation) -> Result<String> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        if conversation.id.is_empty() {
            conversation.id = self.fresh_id(seq);
        }
        let now = now_ms();
        conversation.created_at_ms = now;
        conversation.updated_at_ms = now;
        let id = conversation.id.clone();
        let mut map = self.conversations.lock().await;
        if map.contains_key(&id) {
            return Err(Error::new(
                ErrorKind::Validation,
                format!("a conversation with id `{id}` already exists"),
            )
            .with_field("id"));
        }
        map.insert(id.clone(), Stored { seq, conversation });
        Ok(id)
    }

    async fn get(&self, id: &str) -> Result<Option<Conversation>> {
        Ok(self
            .conversations
            .lock()
            .await
            .get(id)
            .map(|s| s.conversation.clone()))
    }

    async fn append(
        &self,
        id: &str,
        messages: Vec<Message>,
        usage: Usage,
        cost: Option<Cost>,
    ) -> Result<Conversation> {
        let mut map = self.conversations.lock().await;
        let stored = map.get_mut(id).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no conversation with id `{id}`"),
            )
        })?;
        stored.conversation.record(messages, &usage, cost.as_ref());
        Ok(stored.conversation.clone())
    }

    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>> {
        let map = self.conversations.lock().await;
        let mut all: Vec<&Stored> = map
            .values()
            .filter(|s| {
                filter
                    .provider
                    .as_ref()
                    .is_none_or(|p| *p == s.conversation.provider)
            })
            .filter(|s| {
                filter
                    .model
                    .as_ref()
                    .is_none_or(|m| *m == s.conversation.model)
            })
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.seq));
        Ok(all
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|s| s.conversation.clone())
            .collect())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.conversations.lock().await.remove(id).is_some())
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
