//! Keys, budgets and limits of the gateway, over real HTTP: the admin endpoints with the master
//! key, refused keys (missing, wrong, revoked, wrong model, over budget, over the rate limit)
//! that never reach the upstream, and two gateway instances sharing one PostgreSQL schema and
//! one Redis holding a key to one budget and one rate limit.
//!
//! The shared-instance test needs PostgreSQL at `EXLLM_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and Redis at `EXLLM_REDIS_URL` (default
//! `redis://127.0.0.1:6379`); without them it fails, naming what is missing. It never skips.

use std::net::SocketAddr;

use exllm_app::config::{Environment, Settings};
use exllm_app::gateway::server;
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture;

const MASTER: &str = "sk-master-test-0123456789";
const MODEL: &str = "openai/gpt-4.1-nano";

/// A gateway served in-process on a free loopback port, stopped on drop.
struct Gateway {
    addr: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gateway with the master key, in front of `upstream` as OpenAI, with `env` on top.
async fn gateway(upstream: &FixtureServer, env: &[(&str, String)]) -> Gateway {
    let mut vars = vec![
        ("EXLLM_DATABASE_URL".to_owned(), "memory://".to_owned()),
        ("EXLLM_RETRY__MAX_RETRIES".to_owned(), "0".to_owned()),
        ("EXLLM_MASTER_KEY".to_owned(), MASTER.to_owned()),
        ("OPENAI_API_KEY".to_owned(), "sk-upstream-test".to_owned()),
        (
            "OPENAI_BASE_URL".to_owned(),
            format!("{}/v1", upstream.url()),
        ),
    ];
    for (k, v) in env {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), v.clone()));
    }
    let settings = Settings::load(None, &Environment::from_vars(vars)).expect("settings");
    let state = match server::state(settings).await {
        Ok(state) => state,
        Err(err) => panic!(
            "the gateway could not start (a database or Redis these tests need may be down): {err}"
        ),
    };
    let app = server::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
    .abort_handle();
    Gateway { addr, task }
}

/// An upstream that answers every chat with the recorded gpt-4.1-nano completion.
async fn upstream() -> FixtureServer {
    FixtureServer::start(vec![Scripted::json(
        200,
        fixture("openai/chat-completion-text-gpt41nano.json"),
    )])
    .await
}

/// An HTTP response as the tests read it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The OpenAI error code, asserting the OpenAI error shape.
    fn error_code(&self) -> String {
        let body = self.json();
        let error = &body["error"];
        assert!(error["message"].is_string(), "not an OpenAI error: {body}");
        assert!(error["type"].is_string(), "not an OpenAI error: {body}");
        error["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(key) = bearer {
        head.push_str(&format!("authorization: Bearer {key}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn chat_body(model: &str, max_tokens: u32) -> Value {
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Invent a holiday."}],
    })
}

/// A chat with `max_tokens` 10 (the recorded reply has 363 output tokens: the estimate is
/// below the actual cost, as with an upstream that ignores the limit).
async fn chat(addr: SocketAddr, key: &str, model: &str) -> Reply {
    chat_with(addr, key, model, 10).await
}

async fn chat_with(addr: SocketAddr, key: &str, model: &str, max_tokens: u32) -> Reply {
    http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some(key),
        Some(&chat_body(model, max_tokens)),
    )
    .await
}

/// Creates a key through the admin endpoint; returns its id and the secret key.
async fn create_key(addr: SocketAddr, spec: Value) -> (String, String) {
    let reply = http(addr, "POST", "/admin/keys", Some(MASTER), Some(&spec)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    let id = body["id"].as_str().expect("an id").to_owned();
    let key = body["key"]
        .as_str()
        .expect("the key, shown once")
        .to_owned();
    (id, key)
}

/// The key `id` as `GET /admin/keys` lists it.
async fn listed(addr: SocketAddr, id: &str) -> Value {
    let reply = http(addr, "GET", "/admin/keys", Some(MASTER), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["data"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("key {id} is not listed: {}", reply.body))
}

#[tokio::test]
async fn admin_endpoints_create_list_and_revoke_with_the_master_key() {
    let upstream = upstream().await;
    let gw = gateway(&upstream, &[]).await;

    // Without a key, or with a wrong one: 401; the admin endpoints want the master key.
    let reply = http(gw.addr, "GET", "/admin/keys", None, None).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.error_code(), "invalid_api_key");

    let (id, key) = create_key(
        gw.addr,
        json!({"name": "team-a", "budget_usd": 5, "requests_per_minute": 100,
               "tokens_per_minute": 100000, "allowed_models": [MODEL], "ttl_secs": 3600}),
    )
    .await;
    assert!(key.starts_with("sk-exllm-"), "{key}");
    assert_eq!(key.len(), "sk-exllm-".len() + 64);
    assert!(
        key["sk-exllm-".len()..]
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    );

    // A virtual key is no admin.
    let reply = http(gw.addr, "GET", "/admin/keys", Some(&key), None).await;
    assert_eq!(reply.status, 403, "{}", reply.body);

    // The list shows the key's settings, never the key or its hash.
    let reply = http(gw.addr, "GET", "/admin/keys", Some(MASTER), None).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.body.contains(&key), "the key leaked: {}", reply.body);
    let shown = listed(gw.addr, &id).await;
    assert_eq!(shown["name"], "team-a");
    assert_eq!(shown["budget_usd"], "5");
    assert_eq!(shown["spent_usd"], "0");
    assert_eq!(shown["requests_per_minute"], 100);
    assert_eq!(shown["allowed_models"], json!([MODEL]));
    assert_eq!(shown["revoked"], false);
    assert!(shown["expires_at"].as_u64().is_some());
    assert!(
        shown.get("key").is_none() && shown.get("hash").is_none(),
        "{shown}"
    );

    // Unknown fields and bad values are refused.
    let reply = http(
        gw.addr,
        "POST",
        "/admin/keys",
        Some(MASTER),
        Some(&json!({"budget": 1})),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = http(
        gw.addr,
        "POST",
        "/admin/keys",
        Some(MASTER),
        Some(&json!({"budget_usd": "-1"})),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // The key works, and its spend is settled with the actual cost.
    let reply = chat(gw.addr, &key, MODEL).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(upstream.request_count(), 1);
    // 16 input tokens at $0.1/M + 363 output tokens at $0.4/M.
    assert_eq!(listed(gw.addr, &id).await["spent_usd"], "0.0001468");

    // Revoked: 401, and the upstream is not called.
    let reply = http(
        gw.addr,
        "DELETE",
        &format!("/admin/keys/{id}"),
        Some(MASTER),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(listed(gw.addr, &id).await["revoked"], true);
    let reply = chat(gw.addr, &key, MODEL).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.error_code(), "invalid_api_key");
    assert_eq!(upstream.request_count(), 1);

    let reply = http(
        gw.addr,
        "DELETE",
        "/admin/keys/key_missing",
        Some(MASTER),
        None,
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    // A key nobody issued, and no key at all: 401.
    let reply = chat(gw.addr, "sk-exllm-0000", MODEL).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let reply = http(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        None,
        Some(&chat_body(MODEL, 10)),
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(upstream.request_count(), 1);

    // The master key itself may call models.
    let reply = chat(gw.addr, MASTER, MODEL).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(upstream.request_count(), 2);
}

#[tokio::test]
async fn refused_keys_never_reach_the_upstream() {
    let upstream = upstream().await;
    let gw = gateway(&upstream, &[]).await;

    // A model the key may not use: 403.
    let (_, key) = create_key(
        gw.addr,
        json!({"name": "nano-only", "allowed_models": [MODEL]}),
    )
    .await;
    let reply = chat(gw.addr, &key, "openai/gpt-4o").await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.error_code(), "model_not_allowed");

    // An exhausted budget: refused before the call.
    let (_, broke) = create_key(gw.addr, json!({"name": "broke", "budget_usd": "0"})).await;
    let reply = chat(gw.addr, &broke, MODEL).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.error_code(), "insufficient_quota");

    // An expired key: 401.
    let (_, expired) = create_key(gw.addr, json!({"name": "old", "expires_at": 1})).await;
    let reply = chat(gw.addr, &expired, MODEL).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(upstream.request_count(), 0);

    // A budget one call exhausts: the estimate (10 output tokens) fits, the actual cost
    // ($0.0001468) does not, so the next call is refused before the upstream sees it.
    let (_, one_call) = create_key(gw.addr, json!({"name": "one", "budget_usd": "0.0001"})).await;
    let reply = chat(gw.addr, &one_call, MODEL).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(upstream.request_count(), 1);
    let reply = chat(gw.addr, &one_call, MODEL).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.error_code(), "insufficient_quota");
    assert_eq!(upstream.request_count(), 1);

    // Requests per minute: the third call in a minute is refused with a retry hint.
    let (_, limited) = create_key(gw.addr, json!({"name": "slow", "requests_per_minute": 2})).await;
    for _ in 0..2 {
        assert_eq!(chat(gw.addr, &limited, MODEL).await.status, 200);
    }
    let reply = chat(gw.addr, &limited, MODEL).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.error_code(), "rate_limit_exceeded");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry after")
    );
    assert_eq!(upstream.request_count(), 3);
    assert!(reply.header("content-type").is_some());
}

/// The test Redis, checked up front so that its absence fails with a clear message.
async fn redis_url() -> String {
    let url =
        std::env::var("EXLLM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    if let Err(err) = exllm_infrastructure::redis::RedisConnection::connect(&url).await {
        panic!(
            "these tests need a real Redis at {url} (set EXLLM_REDIS_URL to use another; \
             CI starts one): {err}"
        );
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_budget_and_one_rate_limit() {
    let database = std::env::var("EXLLM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "exllm_gateway_keys_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let redis = redis_url().await;
    let env = [
        ("EXLLM_DATABASE_URL", format!("{database}?schema={schema}")),
        ("EXLLM_REDIS_URL", redis),
    ];
    // Answers after 300 ms (the delay applies to chunked bodies), so concurrent calls overlap.
    let completion = fixture("openai/chat-completion-text-gpt41nano.json");
    let upstream = FixtureServer::start(vec![
        Scripted::json(200, completion.clone())
            .chunks(vec![completion])
            .delay(300),
    ])
    .await;
    let a = gateway(&upstream, &env).await;
    let b = gateway(&upstream, &env).await;

    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        // One rate limit: 4 requests per minute, whichever instance serves them.
        let (_, key) = create_key(
            a.addr,
            json!({"name": "shared-rpm", "requests_per_minute": 4}),
        )
        .await;
        let mut statuses = Vec::new();
        for i in 0..6 {
            let gw = if i % 2 == 0 { &a } else { &b };
            statuses.push(chat(gw.addr, &key, MODEL).await.status);
        }
        assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
        assert_eq!(upstream.request_count(), 4);

        // One budget: each call reserves its estimate before it goes out (max_tokens 400 at
        // $0.4/M plus the prompt: about $0.00016), and settles at its actual cost ($0.0001468)
        // after. $0.0005 holds three estimates but not four, so of eight concurrent calls on
        // both instances (the upstream answers after 300 ms, so all reserve before any
        // settles) exactly three go out.
        let (id, key) = create_key(
            b.addr,
            json!({"name": "shared-budget", "budget_usd": "0.0005"}),
        )
        .await;
        let before = upstream.request_count();
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let addr = if i % 2 == 0 { a.addr } else { b.addr };
                let key = key.clone();
                tokio::spawn(async move { chat_with(addr, &key, MODEL, 400).await })
            })
            .collect();
        let mut ok = 0;
        for call in calls {
            let reply = call.await.unwrap();
            match reply.status {
                200 => ok += 1,
                429 => assert_eq!(reply.error_code(), "insufficient_quota"),
                other => panic!("unexpected {other}: {}", reply.body),
            }
        }
        assert_eq!(
            ok, 3,
            "calls that passed one $0.0005 budget across two instances"
        );
        assert_eq!(upstream.request_count() - before, 3);
        assert_eq!(listed(a.addr, &id).await["spent_usd"], "0.0004404");

        // The rest of the budget is less than one estimate: both instances refuse before the
        // upstream.
        for gw in [&a, &b] {
            let reply = chat_with(gw.addr, &key, MODEL, 400).await;
            assert_eq!(reply.status, 429, "{}", reply.body);
            assert_eq!(reply.error_code(), "insufficient_quota");
        }
        assert_eq!(upstream.request_count() - before, 3);

        // Revoked on one instance, refused on the other.
        let (id, key) = create_key(a.addr, json!({"name": "revoke-me"})).await;
        assert_eq!(chat(b.addr, &key, MODEL).await.status, 200);
        let reply = http(
            b.addr,
            "DELETE",
            &format!("/admin/keys/{id}"),
            Some(MASTER),
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(chat(a.addr, &key, MODEL).await.status, 401);
    }))
    .await;

    let store = exllm_adapters_persistence::PostgresStore::connect_with_schema(&database, &schema)
        .await
        .expect("reconnect to drop the test schema");
    store.drop_schema().await.expect("drop the test schema");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
