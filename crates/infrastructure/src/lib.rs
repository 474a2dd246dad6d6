//! ExLLM's infrastructure: the one HTTP executor, SSE and NDJSON framing, and test fixtures.
//!
//! Provider adapters translate; everything about sending — pooling, timeouts, status and body
//! to typed errors, secret scrubbing, stream framing with size caps — lives here, once.

pub mod breaker;
pub mod cache;
pub mod fallback;
pub mod headers;
pub mod http;
mod line;
pub mod ndjson;
mod provider_error;
pub mod ratelimit;
pub mod recorder;
#[cfg(feature = "redis")]
pub mod redis;
pub mod retry;
pub mod sse;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timeout;
pub mod tokens;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, FailureRate};
pub use cache::{Cache, CacheConfig, CacheStats, MokaCache, TemperaturePolicy};
pub use fallback::{Fallback, FallbackConfig, FallbackTarget};
pub use headers::RateLimitInfo;
pub use http::{
    Auth, Frame, FrameStream, Framing, HttpConfig, HttpExecutor, HttpRequest, HttpResponse, Method,
};
pub use ndjson::NdjsonDecoder;
pub use ratelimit::{InMemoryRateLimitStore, Limits, RateLimit, RateLimitConfig, WhenLimited};
pub use recorder::{Attempt, UsageHook, UsageRecorder};
#[cfg(feature = "redis")]
pub use redis::{RedisCache, RedisConnection, RedisRateLimitStore};
pub use retry::{Retry, RetryBudget, RetryConfig};
pub use sse::{DEFAULT_MAX_LINE_BYTES, SseDecoder, SseEvent};
pub use timeout::{Timeout, TimeoutConfig};

#[cfg(test)]
mod tests;
