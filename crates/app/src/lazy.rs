//! Stores and Redis backends opened on first use, so that building a client stays synchronous
//! and cheap (`ExLLM::from_env()`, `exllm providers`) and only calls that need a database or
//! Redis connect to one.

use async_trait::async_trait;
use exllm_adapters_persistence::Stores;
use exllm_core::{
    Conversation, ConversationFilter, ConversationStore, Cost, Message, Result, Usage, UsageLedger,
    UsageQuery, UsageRecord, UsageTotal,
};
use tokio::sync::OnceCell;
#[cfg(feature = "redis")]
use {
    exllm_core::{Acquire, RateLimitStore, ResponseCache},
    exllm_infrastructure::redis::{RedisCache, RedisConnection, RedisRateLimitStore},
    std::time::Duration,
};

/// The conversation store and ledger at a store URL, opened (and migrated) on first use.
#[derive(Debug)]
pub struct LazyStores {
    url: String,
    stores: OnceCell<Stores>,
}

impl LazyStores {
    /// Stores at `url` (`sqlite://…`, `postgres://…`, `memory://`), not yet opened.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stores: OnceCell::new(),
        }
    }

    /// The store URL with any password hidden.
    pub fn target(&self) -> String {
        exllm_adapters_persistence::redact_url(&self.url)
    }

    async fn get(&self) -> Result<&Stores> {
        self.stores
            .get_or_try_init(|| exllm_adapters_persistence::open(&self.url))
            .await
    }
}

#[async_trait]
impl ConversationStore for LazyStores {
    async fn create(&self, conversation: Conversation) -> Result<String> {
        self.get().await?.conversations.create(conversation).await
    }
    async fn get(&self, id: &str) -> Result<Option<Conversation>> {
        LazyStores::get(self).await?.conversations.get(id).await
    }
    async fn append(
        &self,
        id: &str,
        messages: Vec<Message>,
        usage: Usage,
        cost: Option<Cost>,
    ) -> Result<Conversation> {
        LazyStores::get(self)
            .await?
            .conversations
            .append(id, messages, usage, cost)
            .await
    }
    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>> {
        LazyStores::get(self)
            .await?
            .conversations
            .list(filter)
            .await
    }
    async fn delete(&self, id: &str) -> Result<bool> {
        LazyStores::get(self).await?.conversations.delete(id).await
    }
}

#[async_trait]
impl UsageLedger for LazyStores {
    async fn record(&self, record: UsageRecord) -> Result<()> {
        LazyStores::get(self).await?.ledger.record(record).await
    }
    async fn totals(&self, query: &UsageQuery) -> Result<Vec<UsageTotal>> {
        LazyStores::get(self).await?.ledger.totals(query).await
    }
}

#[cfg(feature = "redis")]
/// Redis at a URL, connected on first use, serving as the second cache level and the shared
/// rate-limit store.
#[derive(Debug)]
pub struct LazyRedis {
    url: String,
    backends: OnceCell<(RedisCache, RedisRateLimitStore)>,
}

#[cfg(feature = "redis")]
impl LazyRedis {
    /// Redis at `url`, not yet connected.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            backends: OnceCell::new(),
        }
    }

    async fn get(&self) -> Result<&(RedisCache, RedisRateLimitStore)> {
        self.backends
            .get_or_try_init(|| async {
                let conn = RedisConnection::connect(&self.url).await?;
                Ok((
                    RedisCache::new(conn.clone()),
                    RedisRateLimitStore::new(conn),
                ))
            })
            .await
    }
}

#[cfg(feature = "redis")]
#[async_trait]
impl ResponseCache for LazyRedis {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        LazyRedis::get(self).await?.0.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        LazyRedis::get(self).await?.0.put(key, value, ttl).await
    }
}

#[cfg(feature = "redis")]
#[async_trait]
impl RateLimitStore for LazyRedis {
    async fn acquire(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Acquire> {
        LazyRedis::get(self)
            .await?
            .1
            .acquire(key, amount, limit, window)
            .await
    }
    async fn settle(&self, key: &str, delta: i64, limit: u64, window: Duration) -> Result<()> {
        LazyRedis::get(self)
            .await?
            .1
            .settle(key, delta, limit, window)
            .await
    }
}
