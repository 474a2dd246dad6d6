//! The cache and rate-limit middleware, wired into real `ExLLM` clients: the OpenAI adapter
//! over the fixture server (real TCP), the real Redis at `EXLLM_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) for the shared backends, and the mock provider where paused tokio
//! time drives the in-process limiter.
//!
//! Every Redis test works under its own key prefix, so runs never collide. A Redis that cannot
//! be reached fails these tests with a message saying so; they never skip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use exllm_adapters_providers::{MockProvider, OpenAiConfig, OpenAiProvider};
use exllm_core::stream::collect;
use exllm_core::{
    Acquire, CacheControl, CallerKey, ChatProvider, ChatRequest, ChatResponse, ChatStream,
    ErrorKind, ExLLM, Middleware, RateLimitStore, ResponseCache, Secret, StreamEvent, Usage,
};
use exllm_infrastructure::cache::{Cache, CacheConfig, MokaCache, TemperaturePolicy};
use exllm_infrastructure::http::{HttpConfig, HttpExecutor};
use exllm_infrastructure::ratelimit::{
    InMemoryRateLimitStore, Limits, RateLimit, RateLimitConfig, WINDOW,
};
use exllm_infrastructure::redis::{RedisCache, RedisConnection, RedisRateLimitStore};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use futures_util::StreamExt;
use serde_json::json;

use crate::fixture_text;

const MODEL: &str = "openai/gpt-4.1-nano";

// ---------------------------------------------------------------------------------------------
// Helpers

/// The Redis the tests share.
fn redis_url() -> String {
    std::env::var("EXLLM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh connection to the test Redis, or a failure that says what to do.
async fn redis() -> RedisConnection {
    let url = redis_url();
    match RedisConnection::connect(&url).await {
        Ok(redis) => redis,
        Err(err) => panic!(
            "these tests need a real Redis at {url} (set EXLLM_REDIS_URL to use another; \
             start one with `redis-server --daemonize yes`): {err}"
        ),
    }
}

/// A key prefix no other test or run uses.
fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "exllm-test:{test}:{}:{nanos}:{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The real OpenAI adapter pointed at `server`.
fn openai(server: &FixtureServer) -> Arc<dyn ChatProvider> {
    let executor = HttpExecutor::new(HttpConfig {
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..HttpConfig::default()
    })
    .expect("an HTTP executor");
    Arc::new(OpenAiProvider::new(
        OpenAiConfig::openai(
            Some(Secret::new("sk-test-key")),
            Some(format!("{}/v1", server.url())),
        ),
        executor,
    ))
}

fn client(provider: Arc<dyn ChatProvider>, middleware: Vec<Arc<dyn Middleware>>) -> ExLLM {
    middleware
        .into_iter()
        .fold(ExLLM::builder().provider(provider), |b, m| b.middleware(m))
        .build()
}

/// A recorded plain reply (gpt-4.1-nano, usage 16 + 363).
fn text_reply() -> Scripted {
    Scripted::json(
        200,
        fixture_text("openai/chat-completion-text-gpt41nano.json"),
    )
}

/// A recorded streamed reply (gpt-4o, with a usage chunk: 14 + 30).
fn stream_reply() -> Scripted {
    Scripted::sse(200, fixture_text("openai/stream-text-gpt4o.sse"))
}

fn server_error() -> Scripted {
    Scripted::json(500, fixture_text("openai/error-500-server-error.json"))
}

fn cache_hit(response: &ChatResponse) -> bool {
    response.metadata.get("cache") == Some(&json!("hit"))
}

/// Every event of a stream, the error ending it included.
async fn events(stream: ChatStream) -> Vec<exllm_core::Result<StreamEvent>> {
    stream.collect().await
}

fn text_of(events: &[exllm_core::Result<StreamEvent>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::TextDelta(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn done_of(events: &[exllm_core::Result<StreamEvent>]) -> Option<ChatResponse> {
    events.iter().find_map(|e| match e {
        Ok(StreamEvent::Done(response)) => Some((**response).clone()),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// The cache

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache() {
    let server = FixtureServer::start(vec![text_reply()]).await;
    let cache = Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()));
    let exllm = client(openai(&server), vec![cache.clone()]);

    let first = exllm
        .chat(MODEL, "Invent a holiday")
        .await
        .expect("first call");
    let second = exllm
        .chat(MODEL, "Invent a holiday")
        .await
        .expect("second call");

    assert_eq!(
        server.request_count(),
        1,
        "the second call must not go upstream"
    );
    assert!(!cache_hit(&first));
    assert!(cache_hit(&second));
    assert_eq!(second.text(), first.text());
    assert_eq!(second.usage, first.usage);
    assert_eq!(second.usage, Usage::new(16, 363));
    assert_eq!(second.cost, first.cost);
    assert_eq!(second.id, first.id);
    assert_eq!(second.finish_reason, first.finish_reason);
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(cache.stats().misses, 1);
}

#[tokio::test]
async fn a_repeated_stream_is_replayed_from_the_cache() {
    let server = FixtureServer::start(vec![stream_reply()]).await;
    let cache = Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()));
    let exllm = client(openai(&server), vec![cache.clone()]);

    let first = events(exllm.stream(MODEL, "Weather?").await.expect("first stream")).await;
    let second = events(
        exllm
            .stream(MODEL, "Weather?")
            .await
            .expect("second stream"),
    )
    .await;

    assert_eq!(server.request_count(), 1, "the replay must not go upstream");
    assert!(second.iter().all(Result::is_ok));
    let (first_done, second_done) = (
        done_of(&first).expect("Done"),
        done_of(&second).expect("Done"),
    );
    assert!(cache_hit(&second_done));
    assert!(!text_of(&first).is_empty());
    assert_eq!(
        text_of(&second),
        text_of(&first),
        "the deltas carry the same text"
    );
    assert_eq!(second_done.text(), first_done.text());
    assert_eq!(second_done.usage, Usage::new(14, 30));
    assert_eq!(second_done.usage, first_done.usage);
    assert_eq!(second_done.cost, first_done.cost);
    assert!(
        second
            .iter()
            .any(|e| matches!(e, Ok(StreamEvent::Usage(u)) if *u == first_done.usage)),
        "the replay reports usage as an event too"
    );
    assert!(matches!(second.last(), Some(Ok(StreamEvent::Done(_)))));

    // A plain call for the same request is answered by the streamed reply too.
    let plain = exllm.chat(MODEL, "Weather?").await.expect("plain call");
    assert!(cache_hit(&plain));
    assert_eq!(plain.text(), first_done.text());
    assert_eq!(server.request_count(), 1);
    assert_eq!(cache.stats().hits, 2);
}

#[tokio::test]
async fn cache_control_off_bypasses_the_cache() {
    let server = FixtureServer::start(vec![text_reply(), text_reply(), text_reply()]).await;
    let cache = Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()));
    let exllm = client(openai(&server), vec![cache.clone()]);
    let bypass = || {
        ChatRequest::default()
            .user("Invent a holiday")
            .extension(CacheControl { enabled: false })
    };

    exllm
        .chat(MODEL, "Invent a holiday")
        .await
        .expect("fills the cache");
    let bypassed = exllm.chat(MODEL, bypass()).await.expect("bypassing call");
    assert!(!cache_hit(&bypassed));
    assert_eq!(server.request_count(), 2, "a bypassing call goes upstream");

    // Nor does a bypassing call store: a fresh cache stays empty after one.
    let fresh = Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()));
    let exllm = client(openai(&server), vec![fresh.clone()]);
    exllm.chat(MODEL, bypass()).await.expect("bypassing call");
    assert_eq!(server.request_count(), 3);
    assert_eq!(
        fresh.stats().hits + fresh.stats().misses,
        0,
        "bypassed calls are not counted"
    );
}

#[tokio::test]
async fn errors_are_never_cached() {
    let server = FixtureServer::start(vec![server_error(), text_reply()]).await;
    let cache = Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()));
    let exllm = client(openai(&server), vec![cache.clone()]);

    let err = exllm.chat(MODEL, "Hi").await.expect_err("a 500");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let ok = exllm
        .chat(MODEL, "Hi")
        .await
        .expect("the retry goes upstream");
    assert!(!cache_hit(&ok));
    let hit = exllm.chat(MODEL, "Hi").await.expect("now cached");
    assert!(cache_hit(&hit));
    assert_eq!(server.request_count(), 2);
    assert_eq!(cache.stats().misses, 2);
    assert_eq!(cache.stats().hits, 1);
}

#[tokio::test]
async fn an_incomplete_stream_is_never_cached() {
    let sse = fixture_text("openai/stream-text-gpt4o.sse");
    let half = sse.as_bytes()[..sse.len() / 2].to_vec();
    let server =
        FixtureServer::start(vec![Scripted::reset_after(vec![half]), stream_reply()]).await;
    let cache = Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()));
    let exllm = client(openai(&server), vec![cache.clone()]);

    let broken = events(
        exllm
            .stream(MODEL, "Weather?")
            .await
            .expect("stream starts"),
    )
    .await;
    assert!(
        matches!(broken.last(), Some(Err(_))),
        "the broken stream ends in an error"
    );
    assert!(done_of(&broken).is_none());

    let whole = events(exllm.stream(MODEL, "Weather?").await.expect("stream")).await;
    assert!(!cache_hit(&done_of(&whole).expect("Done")));
    assert_eq!(
        server.request_count(),
        2,
        "the broken stream left nothing to replay"
    );

    // A stream dropped before its end stores nothing either.
    let server = FixtureServer::start(vec![stream_reply(), stream_reply()]).await;
    let exllm = client(
        openai(&server),
        vec![Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()))],
    );
    let mut stream = exllm.stream(MODEL, "Weather?").await.expect("stream");
    let _first = stream.next().await;
    drop(stream);
    let again = collect(exllm.stream(MODEL, "Weather?").await.expect("stream")).await;
    assert!(!cache_hit(&again.expect("complete")));
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn sampled_requests_are_cached_only_when_the_policy_says_so() {
    let sampled = || {
        ChatRequest::default()
            .user("Invent a holiday")
            .temperature(0.7)
    };

    let server = FixtureServer::start(vec![text_reply(), text_reply()]).await;
    let cache = Arc::new(Cache::in_memory(1 << 20, CacheConfig::new()));
    let exllm = client(openai(&server), vec![cache.clone()]);
    exllm.chat(MODEL, sampled()).await.expect("first");
    let second = exllm.chat(MODEL, sampled()).await.expect("second");
    assert!(!cache_hit(&second));
    assert_eq!(
        server.request_count(),
        2,
        "by default a sampled reply is not reused"
    );

    // Temperature 0 is deterministic: cached by default.
    let server = FixtureServer::start(vec![text_reply()]).await;
    let exllm = client(openai(&server), vec![cache.clone()]);
    let zero = || {
        ChatRequest::default()
            .user("Invent a holiday")
            .temperature(0.0)
    };
    exllm.chat(MODEL, zero()).await.expect("first");
    assert!(cache_hit(&exllm.chat(MODEL, zero()).await.expect("second")));
    assert_eq!(server.request_count(), 1);

    let server = FixtureServer::start(vec![text_reply()]).await;
    let always = Arc::new(Cache::in_memory(
        1 << 20,
        CacheConfig::new().temperature(TemperaturePolicy::Always),
    ));
    let exllm = client(openai(&server), vec![always]);
    exllm.chat(MODEL, sampled()).await.expect("first");
    assert!(cache_hit(
        &exllm.chat(MODEL, sampled()).await.expect("second")
    ));
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn the_key_covers_what_changes_the_answer_and_nothing_else() {
    let base = || ChatRequest::new("gpt-4.1-nano").user("Hi");
    let key = |provider: &str, request: ChatRequest| Cache::key(provider, &request).expect("key");
    let reference = key("openai", base());

    // Who asks and how it travels do not change the answer.
    let same = base()
        .extension(CallerKey("team-a".into()))
        .extension(CacheControl { enabled: true })
        .extra_header("x-trace", "1");
    assert_eq!(key("openai", same), reference);

    // Everything that can change the answer changes the key.
    let variants = [
        key("groq", base()),
        key("openai", ChatRequest::new("gpt-4o").user("Hi")),
        key("openai", ChatRequest::new("gpt-4.1-nano").user("Hello")),
        key("openai", base().system("Be brief")),
        key("openai", base().temperature(0.0)),
        key("openai", base().top_p(0.5)),
        key("openai", base().max_tokens(10)),
        key("openai", base().stop("\n")),
        key("openai", base().seed(7)),
        key("openai", base().extra_body("logprobs", json!(true))),
        key(
            "openai",
            base().tool(exllm_core::ToolDefinition::new(
                "f",
                "does f",
                json!({"type": "object"}),
            )),
        ),
        key(
            "openai",
            base().tool_choice(exllm_core::ToolChoice::Required),
        ),
        key(
            "openai",
            base().response_format(exllm_core::ResponseFormat::JsonObject),
        ),
    ];
    for (i, variant) in variants.iter().enumerate() {
        assert_ne!(*variant, reference, "variant {i} must change the key");
    }

    // The order of extra_body fields does not.
    let ab = base()
        .extra_body("a", json!({"x": 1, "y": 2}))
        .extra_body("b", json!(2));
    let ba = base()
        .extra_body("b", json!(2))
        .extra_body("a", json!({"y": 2, "x": 1}));
    assert_eq!(key("openai", ab), key("openai", ba));
    assert!(reference.starts_with("v1:") && reference.len() == 3 + 64);
}

#[tokio::test]
async fn the_in_process_level_is_bounded_by_bytes() {
    let moka = MokaCache::new(1000);
    moka.put("small", vec![b'x'; 100], Duration::from_secs(60))
        .await
        .expect("put");
    assert_eq!(moka.get("small").await.expect("get"), Some(vec![b'x'; 100]));
    // An entry heavier than the whole cache is never kept.
    moka.put("huge", vec![b'x'; 5000], Duration::from_secs(60))
        .await
        .expect("put");
    assert!(moka.get("huge").await.expect("get").is_none());
    moka.clear();
    assert_eq!(moka.get("small").await.expect("get"), None);
}

#[tokio::test]
async fn a_second_instance_is_answered_by_redis_and_fills_its_own_level() {
    let prefix = unique_prefix("l2");
    let server = FixtureServer::start(vec![text_reply(), stream_reply()]).await;

    let first = Arc::new(Cache::new(
        vec![
            Arc::new(MokaCache::new(1 << 20)),
            Arc::new(RedisCache::with_prefix(redis().await, prefix.clone())),
        ],
        CacheConfig::new(),
    ));
    let one = client(openai(&server), vec![first.clone()]);
    let filled = one
        .chat(MODEL, "Invent a holiday")
        .await
        .expect("fills both levels");

    // A second client: its own process-level cache, empty, and the same Redis.
    let l1 = MokaCache::new(1 << 20);
    let second = Arc::new(Cache::new(
        vec![
            Arc::new(l1.clone()),
            Arc::new(RedisCache::with_prefix(redis().await, prefix.clone())),
        ],
        CacheConfig::new(),
    ));
    let two = client(openai(&server), vec![second.clone()]);
    let hit = two
        .chat(MODEL, "Invent a holiday")
        .await
        .expect("answered by Redis");
    assert!(cache_hit(&hit));
    assert_eq!(hit.text(), filled.text());
    assert_eq!(hit.usage, filled.usage);
    assert_eq!(server.request_count(), 1);
    assert_eq!(second.stats().hits, 1);

    // The Redis hit filled the second client's own level: a cache over it alone answers.
    let l1_only = client(
        openai(&server),
        vec![Arc::new(Cache::new(vec![Arc::new(l1)], CacheConfig::new()))],
    );
    assert!(cache_hit(
        &l1_only
            .chat(MODEL, "Invent a holiday")
            .await
            .expect("L1 hit")
    ));

    // Streams share through Redis as well.
    let streamed = collect(one.stream(MODEL, "Weather?").await.expect("stream")).await;
    let replayed = collect(two.stream(MODEL, "Weather?").await.expect("replay")).await;
    let (streamed, replayed) = (streamed.expect("complete"), replayed.expect("complete"));
    assert!(cache_hit(&replayed));
    assert_eq!(replayed.text(), streamed.text());
    assert_eq!(replayed.usage, streamed.usage);
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn redis_entries_expire_with_the_ttl() {
    let cache = RedisCache::with_prefix(redis().await, unique_prefix("ttl"));
    cache
        .put("k", b"v".to_vec(), Duration::from_secs(30))
        .await
        .expect("put");
    assert_eq!(cache.get("k").await.expect("get"), Some(b"v".to_vec()));
    assert_eq!(cache.get("absent").await.expect("get"), None);
}

#[tokio::test]
async fn redis_failures_are_clear_and_never_show_the_password() {
    // Port 1 refuses connections.
    let err = RedisConnection::connect("redis://:hunter2@127.0.0.1:1/0")
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redis://:***@127.0.0.1:1/0"), "{shown}");

    let err = RedisConnection::connect("http://user:hunter2@127.0.0.1:6379")
        .await
        .expect_err("not a Redis URL");
    assert_eq!(err.kind(), ErrorKind::Config);
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let err = RedisConnection::connect("hunter2")
        .await
        .expect_err("not a URL");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    let redis = redis().await;
    assert!(!format!("{redis:?}").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test]
async fn two_clients_sharing_redis_are_held_to_one_limit_together() {
    let prefix = unique_prefix("rpm");
    let config = RateLimitConfig::new()
        .provider("openai", Limits::new().requests_per_minute(5))
        .fail_fast();
    let server = FixtureServer::start((0..8).map(|_| text_reply()).collect()).await;
    let clients: Vec<ExLLM> = {
        let mut clients = Vec::new();
        for _ in 0..2 {
            let store = Arc::new(RedisRateLimitStore::with_prefix(
                redis().await,
                prefix.clone(),
            ));
            let limit = Arc::new(RateLimit::new(store, config.clone()).expect("valid config"));
            clients.push(client(openai(&server), vec![limit]));
        }
        clients
    };

    let mut granted = 0;
    let mut limited = Vec::new();
    for i in 0..8 {
        match clients[i % 2].chat(MODEL, "Hi").await {
            Ok(_) => granted += 1,
            Err(err) => limited.push(err),
        }
    }
    assert_eq!(granted, 5, "five calls fit the shared limit");
    assert_eq!(limited.len(), 3);
    for err in &limited {
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
        let wait = err.retry_after().expect("a retry-after");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(12),
            "{wait:?}"
        );
        assert_eq!(err.provider(), Some("openai"));
    }
    assert_eq!(server.request_count(), 5, "refused calls never go upstream");
}

#[tokio::test]
async fn concurrent_acquires_on_redis_never_exceed_the_limit() {
    let prefix = unique_prefix("race");
    let stores: Vec<Arc<RedisRateLimitStore>> = {
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(Arc::new(RedisRateLimitStore::with_prefix(
                redis().await,
                prefix.clone(),
            )));
        }
        stores
    };
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            tokio::spawn(async move { store.acquire("bucket", 1, 10, WINDOW).await })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if task.await.expect("task").expect("acquire") == Acquire::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 10);
}

#[tokio::test]
async fn redis_tokens_per_minute_settle_on_the_actual_usage() {
    let store = RedisRateLimitStore::with_prefix(redis().await, unique_prefix("tpm"));
    assert_eq!(
        store.acquire("b", 60, 100, WINDOW).await.expect("take"),
        Acquire::Granted
    );
    // The estimate was 60; the reply used 10.
    store.settle("b", -50, 100, WINDOW).await.expect("settle");
    assert_eq!(
        store.acquire("b", 85, 100, WINDOW).await.expect("take"),
        Acquire::Granted
    );
    let Acquire::Wait(wait) = store.acquire("b", 20, 100, WINDOW).await.expect("take") else {
        panic!("95 used of 100: 20 more must wait");
    };
    // 15 tokens over at 100 per minute: about nine seconds (less the moments the test took).
    assert!(
        wait > Duration::from_secs(8) && wait <= Duration::from_secs(9),
        "{wait:?}"
    );
}

#[tokio::test]
async fn streams_count_against_the_limits() {
    let prefix = unique_prefix("stream");
    let server = FixtureServer::start(vec![stream_reply(), stream_reply()]).await;
    let store = Arc::new(RedisRateLimitStore::with_prefix(redis().await, prefix));
    let limit = RateLimit::new(
        store,
        RateLimitConfig::new().provider("openai", Limits::new().requests_per_minute(1)),
    )
    .expect("valid");
    let exllm = client(openai(&server), vec![Arc::new(limit)]);

    collect(exllm.stream(MODEL, "Weather?").await.expect("admitted"))
        .await
        .expect("complete");
    let err = match exllm.stream(MODEL, "Weather?").await {
        Ok(_) => panic!("the second stream must be refused"),
        Err(err) => err,
    };
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.retry_after().is_some());
    assert_eq!(server.request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn waiting_mode_sleeps_until_the_bucket_allows() {
    let limit = RateLimit::in_memory(
        RateLimitConfig::new()
            .provider("mock", Limits::new().requests_per_minute(2))
            .wait(Duration::from_secs(60)),
    )
    .expect("valid");
    let exllm = client(Arc::new(MockProvider::new()), vec![Arc::new(limit)]);

    let start = tokio::time::Instant::now();
    exllm.chat("mock/echo", "one").await.expect("first");
    exllm.chat("mock/echo", "two").await.expect("second");
    assert_eq!(start.elapsed(), Duration::ZERO, "a burst of two fits");
    exllm
        .chat("mock/echo", "three")
        .await
        .expect("third, after a wait");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(30),
        "one request refills every 30 s"
    );

    // Streams wait too.
    let stream = exllm.stream("mock/echo", "four").await.expect("fourth");
    collect(stream).await.expect("complete");
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn waiting_longer_than_allowed_fails_at_once() {
    let limit = RateLimit::in_memory(
        RateLimitConfig::new()
            .provider("mock", Limits::new().requests_per_minute(1))
            .wait(Duration::from_secs(10)),
    )
    .expect("valid");
    let exllm = client(Arc::new(MockProvider::new()), vec![Arc::new(limit)]);

    let start = tokio::time::Instant::now();
    exllm.chat("mock/echo", "one").await.expect("first");
    let err = exllm
        .chat("mock/echo", "two")
        .await
        .expect_err("needs 60 s, may wait 10");
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(start.elapsed(), Duration::ZERO, "no pointless sleep");
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_settle_on_the_actual_usage() {
    let mut big = ChatResponse::new("mock", "echo");
    big.content
        .push(exllm_core::ContentPart::text("long answer"));
    big.usage = Usage::new(10, 80);
    // Echo replies use 1 + 3 tokens ("Hi"; "mock reply: Hi") against 51 reserved
    // (1 for the prompt + max_tokens 50).
    let mock = Arc::new(
        MockProvider::new()
            .reply("a")
            .reply("b")
            .reply("c")
            .reply_response(big),
    );
    let limit = RateLimit::in_memory(
        RateLimitConfig::new()
            .provider("mock", Limits::new().tokens_per_minute(100))
            .fail_fast(),
    )
    .expect("valid");
    let exllm = client(mock, vec![Arc::new(limit)]);
    let call = || ChatRequest::default().user("Hi").max_tokens(50);

    // Without settlement the second call would find 51 + 51 > 100 reserved.
    for _ in 0..3 {
        exllm
            .chat("mock/echo", call())
            .await
            .expect("fits once settled");
    }
    // Three replies of 1 + 1 tokens are settled: 6 used. This one reserves 51 and uses 90.
    exllm
        .chat("mock/echo", call())
        .await
        .expect("fits: 57 reserved");
    let err = exllm
        .chat("mock/echo", call())
        .await
        .expect_err("96 + 51 > 100");
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    // 47 tokens over, at 100 per minute: 28.2 seconds.
    assert_eq!(err.retry_after(), Some(Duration::from_millis(28_200)));
}

#[tokio::test(start_paused = true)]
async fn callers_have_their_own_buckets() {
    let limit = RateLimit::in_memory(
        RateLimitConfig::new()
            .per_caller(Limits::new().requests_per_minute(1))
            .caller("vip", Limits::new().requests_per_minute(3)),
    )
    .expect("valid");
    let exllm = client(Arc::new(MockProvider::new()), vec![Arc::new(limit)]);
    let as_caller = |key: &str| {
        ChatRequest::default()
            .user("Hi")
            .extension(CallerKey(key.into()))
    };

    exllm
        .chat("mock/echo", as_caller("a"))
        .await
        .expect("a's first");
    let err = exllm
        .chat("mock/echo", as_caller("a"))
        .await
        .expect_err("a's second");
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(
        !err.message().contains("`a`"),
        "caller keys stay out of messages"
    );
    exllm
        .chat("mock/echo", as_caller("b"))
        .await
        .expect("b has its own bucket");
    for _ in 0..3 {
        exllm
            .chat("mock/echo", as_caller("vip"))
            .await
            .expect("vip's own limit");
    }
    // No caller key, no caller limit.
    exllm
        .chat("mock/echo", "anonymous")
        .await
        .expect("unlimited");
}

#[tokio::test(start_paused = true)]
async fn a_refused_call_takes_nothing_from_the_other_buckets() {
    let store = Arc::new(InMemoryRateLimitStore::new());
    let limit = RateLimit::new(
        store.clone(),
        RateLimitConfig::new()
            .provider("mock", Limits::new().requests_per_minute(10))
            .per_caller(Limits::new().requests_per_minute(1)),
    )
    .expect("valid");
    let exllm = client(Arc::new(MockProvider::new()), vec![Arc::new(limit)]);
    let as_a = || {
        ChatRequest::default()
            .user("Hi")
            .extension(CallerKey("a".into()))
    };

    exllm.chat("mock/echo", as_a()).await.expect("first");
    for _ in 0..5 {
        exllm
            .chat("mock/echo", as_a())
            .await
            .expect_err("over a's limit");
    }
    // The provider bucket gave back the five refused calls: nine of ten are left.
    for _ in 0..9 {
        assert_eq!(
            store.acquire("provider:mock:rpm", 1, 10, WINDOW).await.ok(),
            Some(Acquire::Granted)
        );
    }
    assert!(matches!(
        store.acquire("provider:mock:rpm", 1, 10, WINDOW).await,
        Ok(Acquire::Wait(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_in_process_bucket_refills_continuously() {
    let store = InMemoryRateLimitStore::new();
    for _ in 0..3 {
        assert_eq!(
            store.acquire("k", 1, 3, WINDOW).await.ok(),
            Some(Acquire::Granted)
        );
    }
    let Ok(Acquire::Wait(wait)) = store.acquire("k", 1, 3, WINDOW).await else {
        panic!("the fourth call must wait");
    };
    assert_eq!(wait, Duration::from_secs(20));
    tokio::time::advance(wait).await;
    assert_eq!(
        store.acquire("k", 1, 3, WINDOW).await.ok(),
        Some(Acquire::Granted)
    );
}

#[tokio::test(start_paused = true)]
async fn an_amount_over_the_bucket_waits_for_an_empty_one_and_leaves_a_debt() {
    let store = InMemoryRateLimitStore::new();
    assert_eq!(
        store.acquire("k", 10, 60, WINDOW).await.ok(),
        Some(Acquire::Granted)
    );
    let Ok(Acquire::Wait(wait)) = store.acquire("k", 100, 60, WINDOW).await else {
        panic!("must wait for the bucket to empty");
    };
    assert_eq!(wait, Duration::from_secs(10));
    tokio::time::advance(wait).await;
    assert_eq!(
        store.acquire("k", 100, 60, WINDOW).await.ok(),
        Some(Acquire::Granted)
    );
    // 100 used of 60: the next unit waits 41 seconds.
    let Ok(Acquire::Wait(wait)) = store.acquire("k", 1, 60, WINDOW).await else {
        panic!("the debt must be waited out");
    };
    assert_eq!(wait, Duration::from_secs(41));
}

#[tokio::test]
async fn zero_limits_are_config_errors() {
    let store = InMemoryRateLimitStore::new();
    let err = store
        .acquire("k", 1, 0, WINDOW)
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(err, Some(ErrorKind::Config));
    let err = RateLimit::in_memory(
        RateLimitConfig::new().provider("openai", Limits::new().requests_per_minute(0)),
    )
    .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Config));
    let redis = RedisRateLimitStore::with_prefix(redis().await, unique_prefix("zero"));
    let err = redis
        .acquire("k", 1, 0, WINDOW)
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(err, Some(ErrorKind::Config));
}
