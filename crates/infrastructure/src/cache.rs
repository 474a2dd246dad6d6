//! The response cache: identical requests answered from a cache, plain and streamed, with an
//! in-process level ([`MokaCache`]) and optionally a shared one (`RedisCache`) read in order.
//!
//! # What makes two requests identical
//!
//! The key is a SHA-256 over canonical JSON (object keys sorted, so map order never matters) of
//! everything that changes the answer: the provider (the pipeline's provider name), model,
//! messages, tools, tool choice, response format, temperature, top-p, max tokens, stop
//! sequences, seed and `extra_body`. Extensions and extra headers are left out: they say who
//! asks and how, not what.
//!
//! # What is stored
//!
//! Only complete replies: a plain call's response, or a stream's final `Done` response (a
//! stream that fails or is dropped before its end stores nothing); errors never. A streamed
//! hit is replayed as events (text, reasoning, tool calls, usage, `Done`) rebuilt from the
//! stored response, so a plain call can answer a later stream and the other way round. A hit
//! carries the same content, usage and cost as the call that filled the cache, and metadata
//! `"cache": "hit"`.
//!
//! Sampled replies (temperature above 0) differ by design, so by default they are neither
//! looked up nor stored; [`TemperaturePolicy::Always`] caches them too. A request that sets no
//! temperature is cached. `CacheControl { enabled: false }` on a call bypasses the cache.
//! Backend failures never fail a call: a lookup that fails is a miss, a store that fails is
//! logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use exllm_core::{
    CacheControl, ChatRequest, ChatResponse, ChatStream, Message, Middleware, Next, ResponseCache,
    ResponseFormat, Result, StreamEvent, ToolChoice, ToolDefinition,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The longest TTL honoured; longer ones are cut to it (a year is "forever" for a cache, and
/// clocks and backends misbehave near their limits).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Which calls are cached, by temperature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemperaturePolicy {
    /// Only calls whose temperature is unset or 0 (the default).
    #[default]
    Deterministic,
    /// Every call, sampled or not: a repeat gets the first sample.
    Always,
}

/// How the cache behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// How long a reply is kept. Default one hour.
    pub ttl: Duration,
    /// Which temperatures are cached. Default: deterministic calls only.
    pub temperature: TemperaturePolicy,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            temperature: TemperaturePolicy::Deterministic,
        }
    }
}

impl CacheConfig {
    /// One hour, deterministic calls only.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
    /// Sets the temperature policy.
    pub fn temperature(mut self, policy: TemperaturePolicy) -> Self {
        self.temperature = policy;
        self
    }
}

/// Lookups answered and not, since the cache was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from a level.
    pub hits: u64,
    /// Lookups no level could answer (bypassed calls are neither).
    pub misses: u64,
}

/// The cache middleware over one or more levels, read in order (an in-process level first,
/// then a shared one); a hit in a later level fills the earlier ones.
///
/// ```
/// use std::sync::Arc;
/// use exllm_infrastructure::cache::{Cache, CacheConfig, MokaCache};
///
/// let cache = Cache::new(vec![Arc::new(MokaCache::new(64 << 20))], CacheConfig::new());
/// assert_eq!(cache.stats().hits, 0);
/// ```
#[derive(Debug)]
pub struct Cache {
    levels: Arc<Levels>,
    temperature: TemperaturePolicy,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Cache {
    /// A cache over `levels`, read in the order given.
    pub fn new(levels: Vec<Arc<dyn ResponseCache>>, config: CacheConfig) -> Self {
        Self {
            levels: Arc::new(Levels {
                levels,
                ttl: config.ttl.min(MAX_TTL),
            }),
            temperature: config.temperature,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A cache with one in-process level holding at most `max_bytes` of replies.
    pub fn in_memory(max_bytes: u64, config: CacheConfig) -> Self {
        Self::new(vec![Arc::new(MokaCache::new(max_bytes))], config)
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The key `request` to `provider` is cached under (see the module docs).
    pub fn key(provider: &str, request: &ChatRequest) -> Result<String> {
        let parts = KeyParts {
            version: 1,
            provider,
            model: &request.model,
            messages: &request.messages,
            tools: &request.tools,
            tool_choice: request.tool_choice.as_ref(),
            response_format: request.response_format.as_ref(),
            temperature: request.temperature,
            top_p: request.top_p,
            max_tokens: request.max_tokens,
            stop: &request.stop,
            seed: request.seed,
            extra_body: &request.extra_body,
        };
        let mut canonical = String::new();
        write_canonical(&serde_json::to_value(&parts)?, &mut canonical);
        let digest = Sha256::digest(canonical.as_bytes());
        let mut key = String::with_capacity(3 + 64);
        key.push_str("v1:");
        for byte in digest {
            key.push(HEX[usize::from(byte >> 4)]);
            key.push(HEX[usize::from(byte & 0xf)]);
        }
        Ok(key)
    }

    /// The key to use for this call, or `None` when the call is not to be cached.
    fn key_for(&self, provider: &str, request: &ChatRequest) -> Option<String> {
        if request
            .extensions
            .get::<CacheControl>()
            .is_some_and(|c| !c.enabled)
        {
            return None;
        }
        let sampled = request.temperature.is_some_and(|t| t > 0.0);
        if sampled && self.temperature == TemperaturePolicy::Deterministic {
            return None;
        }
        match Self::key(provider, request) {
            Ok(key) => Some(key),
            Err(err) => {
                tracing::warn!(error = %err, "cannot compute a cache key; not caching this call");
                None
            }
        }
    }

    async fn lookup(&self, key: &str) -> Option<ChatResponse> {
        match self.levels.lookup(key).await {
            Some(mut response) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                response
                    .metadata
                    .insert("cache".to_owned(), Value::String("hit".to_owned()));
                Some(response)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

#[async_trait]
impl Middleware for Cache {
    async fn handle(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatResponse> {
        let Some(key) = self.key_for(next.provider().name(), &request) else {
            return next.run(request).await;
        };
        if let Some(response) = self.lookup(&key).await {
            return Ok(response);
        }
        let response = next.run(request).await?;
        self.levels.store(&key, &response).await;
        Ok(response)
    }

    async fn handle_stream(&self, request: ChatRequest, next: Next<'_>) -> Result<ChatStream> {
        let Some(key) = self.key_for(next.provider().name(), &request) else {
            return next.run_stream(request).await;
        };
        if let Some(response) = self.lookup(&key).await {
            let events = exllm_core::stream::replay(response).into_iter().map(Ok);
            return Ok(Box::pin(futures_util::stream::iter(events)));
        }
        let stream = next.run_stream(request).await?;
        let levels = Arc::clone(&self.levels);
        // Stored on `Done` only: an error or an early end leaves the cache untouched.
        let storing =
            futures_util::stream::unfold(Some((stream, levels, key)), |state| async move {
                let (mut stream, levels, key) = state?;
                match stream.next().await {
                    Some(Ok(StreamEvent::Done(response))) => {
                        levels.store(&key, &response).await;
                        Some((Ok(StreamEvent::Done(response)), None))
                    }
                    Some(Ok(event)) => Some((Ok(event), Some((stream, levels, key)))),
                    Some(Err(err)) => Some((Err(err), None)),
                    None => None,
                }
            });
        Ok(Box::pin(storing))
    }
}

/// The levels of a cache and the TTL replies are stored with.
#[derive(Debug)]
struct Levels {
    levels: Vec<Arc<dyn ResponseCache>>,
    ttl: Duration,
}

/// What a level stores: the response and when it expires (wall-clock milliseconds), so that a
/// hit in a later level fills the earlier ones for what is left of its life, not a new TTL.
#[derive(Serialize, Deserialize)]
struct Entry {
    expires_at_ms: u64,
    response: ChatResponse,
}

impl Levels {
    async fn lookup(&self, key: &str) -> Option<ChatResponse> {
        for (depth, level) in self.levels.iter().enumerate() {
            let bytes = match level.get(key).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "cache lookup failed; treating it as a miss");
                    continue;
                }
            };
            let entry: Entry = match serde_json::from_slice(&bytes) {
                Ok(entry) => entry,
                Err(err) => {
                    tracing::warn!(error = %err, "unreadable cache entry; treating it as a miss");
                    continue;
                }
            };
            let left = Duration::from_millis(entry.expires_at_ms.saturating_sub(now_ms()));
            if left.is_zero() {
                continue;
            }
            for earlier in &self.levels[..depth] {
                if let Err(err) = earlier.put(key, bytes.clone(), left).await {
                    tracing::warn!(error = %err, "could not fill an earlier cache level");
                }
            }
            return Some(entry.response);
        }
        None
    }

    async fn store(&self, key: &str, response: &ChatResponse) {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = EntryRef {
            expires_at_ms: now_ms().saturating_add(ttl_ms),
            response,
        };
        let bytes = match serde_json::to_vec(&entry) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(error = %err, "cannot serialize a reply for the cache");
                return;
            }
        };
        for level in &self.levels {
            if let Err(err) = level.put(key, bytes.clone(), self.ttl).await {
                tracing::warn!(error = %err, "could not store a reply in the cache");
            }
        }
    }
}

/// [`Entry`] borrowing its response, for storing without a clone.
#[derive(Serialize)]
struct EntryRef<'a> {
    expires_at_ms: u64,
    response: &'a ChatResponse,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Everything in a request that changes the answer, in the order hashed.
#[derive(Serialize)]
struct KeyParts<'a> {
    version: u32,
    provider: &'a str,
    model: &'a str,
    messages: &'a [Message],
    tools: &'a [ToolDefinition],
    tool_choice: Option<&'a ToolChoice>,
    response_format: Option<&'a ResponseFormat>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    stop: &'a [String],
    seed: Option<i64>,
    extra_body: &'a Map<String, Value>,
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
];

/// JSON with object keys sorted at every depth, whatever order the map keeps (serde_json's
/// `preserve_order` may be on anywhere in the build).
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The in-process cache level: a `moka` cache bounded by bytes (keys plus stored replies),
/// each entry expiring after its own TTL.
#[derive(Clone)]
pub struct MokaCache {
    entries: moka::future::Cache<String, Arc<Stored>>,
    max_bytes: u64,
}

struct Stored {
    bytes: Vec<u8>,
    ttl: Duration,
}

// Counts, never contents: replies may hold anything a user said.
impl std::fmt::Debug for MokaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaCache")
            .field("entries", &self.entries.entry_count())
            .field("bytes", &self.entries.weighted_size())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// Each entry lives for the TTL it was put with.
struct PerEntryTtl;

impl moka::Expiry<String, Arc<Stored>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl MokaCache {
    /// A cache holding at most about `max_bytes` of keys and replies; the least useful
    /// entries are evicted first.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Arc<Stored>| {
                u32::try_from(key.len().saturating_add(value.bytes.len())).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self { entries, max_bytes }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// How many entries are held (approximate until pending maintenance has run).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }
}

#[async_trait]
impl ResponseCache for MokaCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .entries
            .get(key)
            .await
            .map(|stored| stored.bytes.clone()))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        // moka would admit an entry heavier than the whole cache until its next maintenance
        // run; such an entry could only push everything else out, so it is never kept.
        let weight = u64::try_from(key.len().saturating_add(value.len())).unwrap_or(u64::MAX);
        if weight > self.max_bytes {
            tracing::debug!(
                bytes = weight,
                "reply larger than the in-process cache; not kept"
            );
            return Ok(());
        }
        let stored = Stored {
            bytes: value,
            ttl: ttl.min(MAX_TTL),
        };
        self.entries.insert(key.to_owned(), Arc::new(stored)).await;
        Ok(())
    }
}
