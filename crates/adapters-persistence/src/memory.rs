//! The in-memory store: conversations and the usage ledger in maps behind locks, gone when the
//! process ends. The default for library users and tests.

use std::collections::BTreeMap;

use async_trait::async_trait;
use exllm_core::{
    Conversation, ConversationFilter, ConversationStore, Cost, Error, ErrorKind, Message, Outcome,
    Result, Usage, UsageLedger, UsageQuery, UsageRecord, UsageTotal,
};
use tokio::sync::Mutex;

use crate::ids::{fresh_conversation_id, now_ms};
use crate::ledger::{Totals, TotalsRow, add_cost, covers};

/// Conversations and ledger records in memory.
///
/// Appends are atomic: concurrent sends to one conversation each land whole, in a total order.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    conversations: Mutex<Conversations>,
    records: Mutex<Vec<UsageRecord>>,
}

#[derive(Debug, Default)]
struct Conversations {
    /// Creation order, so that listing is newest first even within one millisecond.
    next_seq: u64,
    by_id: BTreeMap<String, Stored>,
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
}

#[async_trait]
impl ConversationStore for InMemoryStore {
    async fn create(&self, mut conversation: Conversation) -> Result<String> {
        if conversation.id.is_empty() {
            conversation.id = fresh_conversation_id();
        }
        let now = now_ms();
        conversation.created_at_ms = now;
        conversation.updated_at_ms = now;
        let id = conversation.id.clone();
        let mut all = self.conversations.lock().await;
        if all.by_id.contains_key(&id) {
            return Err(already_exists(&id));
        }
        let seq = all.next_seq;
        all.next_seq += 1;
        all.by_id.insert(id.clone(), Stored { seq, conversation });
        Ok(id)
    }

    async fn get(&self, id: &str) -> Result<Option<Conversation>> {
        Ok(self
            .conversations
            .lock()
            .await
            .by_id
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
        let mut all = self.conversations.lock().await;
        let stored = all.by_id.get_mut(id).ok_or_else(|| not_found(id))?;
        // Sum the cost first: an overflow must leave the conversation untouched.
        let mut total_cost = stored.conversation.cost;
        if let Some(cost) = &cost {
            add_cost(&mut total_cost, cost)?;
        }
        let conversation = &mut stored.conversation;
        conversation.messages.extend(messages);
        conversation.usage.add(&usage);
        conversation.cost = total_cost;
        conversation.updated_at_ms = now_ms().max(conversation.updated_at_ms);
        Ok(conversation.clone())
    }

    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>> {
        let all = self.conversations.lock().await;
        let mut matching: Vec<&Stored> = all
            .by_id
            .values()
            .filter(|s| {
                let c = &s.conversation;
                filter.provider.as_ref().is_none_or(|p| *p == c.provider)
                    && filter.model.as_ref().is_none_or(|m| *m == c.model)
            })
            .collect();
        matching.sort_by_key(|s| std::cmp::Reverse((s.conversation.created_at_ms, s.seq)));
        Ok(matching
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|s| s.conversation.clone())
            .collect())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.conversations.lock().await.by_id.remove(id).is_some())
    }
}

#[async_trait]
impl UsageLedger for InMemoryStore {
    async fn record(&self, record: UsageRecord) -> Result<()> {
        self.records.lock().await.push(record);
        Ok(())
    }

    async fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotal>> {
        let records = self.records.lock().await;
        let mut totals = Totals::new(query.group_by);
        for r in records
            .iter()
            .filter(|r| covers(query, r.at_ms, r.caller.as_deref()))
        {
            totals.add(TotalsRow {
                at_ms: r.at_ms,
                provider: &r.provider,
                model: &r.model,
                caller: r.caller.as_deref(),
                usage: r.usage,
                cost_usd: r.cost.map(|c| c.total_usd),
                is_error: matches!(r.outcome, Outcome::Error(_)),
            })?;
        }
        Ok(totals.finish())
    }
}

/// The error for a conversation id that does not exist.
pub(crate) fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no conversation with id `{id}`"),
    )
}

/// The error for creating a conversation under an id already taken.
pub(crate) fn already_exists(id: &str) -> Error {
    Error::validation(
        "id",
        format!("a conversation with id `{id}` already exists"),
    )
}
