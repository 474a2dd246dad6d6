//! Redis backends: a shared response cache ([`RedisCache`]) and a shared rate-limit store
//! ([`RedisRateLimitStore`]) over one auto-reconnecting connection ([`RedisConnection`]).
//!
//! Several ExLLM instances pointed at the same Redis share cached replies and are held to the
//! same limits together: each acquire is one Lua script, which Redis runs atomically, reading
//! the time from Redis itself so that instances' clocks never disagree.

use std::time::Duration;

use async_trait::async_trait;
use exllm_core::{Acquire, Error, ErrorKind, RateLimitStore, ResponseCache, Result};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::cache::MAX_TTL;

/// How long one connection attempt and one command may take before failing.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to a Redis, shared by every backend built on it (clones share it too).
/// It reconnects by itself after a failure.
#[derive(Clone)]
pub struct RedisConnection {
    manager: ConnectionManager,
    /// The URL with any password hidden, for messages.
    target: String,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`).
    ///
    /// A URL that does not parse is a [`ErrorKind::Config`] error, a Redis that cannot be
    /// reached an [`ErrorKind::Unavailable`] one; neither message contains the password.
    pub async fn connect(url: &str) -> Result<Self> {
        let target = redact_url(url);
        let secrets = url_secrets(url);
        let client = redis::Client::open(url).map_err(|err| {
            Error::config(format!(
                "invalid Redis URL `{target}`: {}",
                scrub(&err.to_string(), &secrets)
            ))
            .with_field("redis_url")
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|err| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "cannot connect to Redis at `{target}`: {}",
                        scrub(&err.to_string(), &secrets)
                    ),
                )
            })?;
        Ok(Self { manager, target })
    }

    /// The URL connected to, password hidden.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn error(&self, what: &str, err: &redis::RedisError) -> Error {
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Unavailable
        };
        Error::new(kind, format!("Redis at `{}`: {what}: {err}", self.target))
    }
}

/// The shared cache level: replies under `{prefix}{key}`, written with `SET … PX`.
#[derive(Debug, Clone)]
pub struct RedisCache {
    redis: RedisConnection,
    prefix: String,
}

impl RedisCache {
    /// The default key prefix.
    pub const PREFIX: &'static str = "exllm:cache:";

    /// A cache on `redis` under the default prefix.
    pub fn new(redis: RedisConnection) -> Self {
        Self::with_prefix(redis, Self::PREFIX)
    }

    /// A cache on `redis` whose keys start with `prefix` (to share a Redis between
    /// deployments, or keep tests apart).
    pub fn with_prefix(redis: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl ResponseCache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.redis.manager.clone();
        conn.get(format!("{}{key}", self.prefix))
            .await
            .map_err(|err| self.redis.error("cache GET failed", &err))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        // PX 0 is an error in Redis; a TTL under a millisecond keeps the entry for one.
        let ms = u64::try_from(ttl.min(MAX_TTL).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.redis.manager.clone();
        redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(value)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|err| self.redis.error("cache SET failed", &err))
    }
}

/// The shared rate-limit store: a token bucket per key (a hash of fill and time under
/// `{prefix}{key}`, expiring once drained), taken and settled by one atomic Lua script each.
#[derive(Debug, Clone)]
pub struct RedisRateLimitStore {
    redis: RedisConnection,
    prefix: String,
    script: redis::Script,
}

/// Takes from or settles a token bucket, atomically.
///
/// KEYS[1]: the bucket. ARGV: amount (signed when settling), limit, window in ms, and `take` or
/// `settle`. Returns 0 when taken (or settled), otherwise the milliseconds to wait.
///
/// The bucket's fill drains continuously at limit/window; a take fits when fill plus the amount
/// (capped at the limit, so that a request larger than the bucket waits for an empty one
/// rather than forever) stays within the limit. The time is Redis's own.
const BUCKET_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local rate = limit / window
local state = redis.call('HMGET', KEYS[1], 'used', 'at')
local used = tonumber(state[1]) or 0
local at = tonumber(state[2]) or now
if now > at then
  used = math.max(0, used - (now - at) * rate)
end
if ARGV[4] == 'take' then
  local need = math.min(amount, limit)
  if used + need > limit + 1e-6 then
    return math.max(1, math.ceil((used + need - limit) / rate))
  end
  used = used + amount
else
  used = math.max(0, used + amount)
end
if used <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('HSET', KEYS[1], 'used', string.format('%.17g', used), 'at', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(used / rate) + 1000)
return 0
";

impl RedisRateLimitStore {
    /// The default key prefix.
    pub const PREFIX: &'static str = "exllm:ratelimit:";

    /// A store on `redis` under the default prefix.
    pub fn new(redis: RedisConnection) -> Self {
        Self::with_prefix(redis, Self::PREFIX)
    }

    /// A store on `redis` whose keys start with `prefix`.
    pub fn with_prefix(redis: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            script: redis::Script::new(BUCKET_SCRIPT),
        }
    }

    async fn run(
        &self,
        key: &str,
        amount: i128,
        limit: u64,
        window: Duration,
        mode: &str,
    ) -> Result<u64> {
        if limit == 0 || window.is_zero() {
            return Err(Error::config(format!(
                "a rate limit needs a positive limit and window (got {limit} per {window:?})"
            )));
        }
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.redis.manager.clone();
        self.script
            .key(format!("{}{key}", self.prefix))
            .arg(amount.to_string())
            .arg(limit)
            .arg(window_ms)
            .arg(mode)
            .invoke_async::<u64>(&mut conn)
            .await
            .map_err(|err| self.redis.error("rate-limit script failed", &err))
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    async fn acquire(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Acquire> {
        match self
            .run(key, i128::from(amount), limit, window, "take")
            .await?
        {
            0 => Ok(Acquire::Granted),
            wait_ms => Ok(Acquire::Wait(Duration::from_millis(wait_ms))),
        }
    }

    async fn settle(&self, key: &str, delta: i64, limit: u64, window: Duration) -> Result<()> {
        self.run(key, i128::from(delta), limit, window, "settle")
            .await
            .map(|_| ())
    }
}

/// `url` with the password (if any) and any query (where a `pass=` may sit) replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL; it may still hold a secret, so show nothing of it.
        return "<unparsable URL>".to_owned();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, "?***"),
        None => (rest, ""),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            // A lone userinfo is the password to Redis (`AUTH password`): hide it all.
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}{query}")
        }
        None => format!("{scheme}://{authority}{path}{query}"),
    }
}

/// Every secret `url` may carry: the userinfo's password, and `pass`/`password` query values.
fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        return secrets;
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        secrets.push(
            userinfo
                .split_once(':')
                .map_or(userinfo, |(_, p)| p)
                .to_owned(),
        );
    }
    for pair in query.split('&') {
        if let Some(("pass" | "password", value)) = pair.split_once('=') {
            secrets.push(value.to_owned());
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// `message` with every occurrence of each secret hidden.
fn scrub(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_owned(), |out, secret| {
        out.replace(secret.as_str(), "***")
    })
}
