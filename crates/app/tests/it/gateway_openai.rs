//! The gateway's OpenAI protocol end to end: the router served in-process on a real port, in
//! front of a fixture upstream over real TCP, called with a plain HTTP client.

use std::time::Duration;

use exllm_app::config::{Environment, Settings};
use exllm_app::gateway::server::{self, GatewayOptions, Shared};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::{fixture, jsonl_to_sse};

/// The provider key the gateway is configured with: it must reach the upstream and nothing
/// else (no log line, no response).
const SENTINEL_KEY: &str = "sk-sentinel-4b1d7c0ffee";

struct Gateway {
    url: String,
    upstream: FixtureServer,
    state: Shared,
    http: reqwest::Client,
}

impl Gateway {
    async fn start(script: Vec<Scripted>) -> Self {
        Self::start_with(script, GatewayOptions::default()).await
    }

    async fn start_with(script: Vec<Scripted>, options: GatewayOptions) -> Self {
        let upstream = FixtureServer::start(script).await;
        let env = Environment::from_vars([
            ("OPENAI_API_KEY".to_owned(), SENTINEL_KEY.to_owned()),
            (
                "OPENAI_BASE_URL".to_owned(),
                format!("{}/v1", upstream.url()),
            ),
            ("EXLLM_DATABASE_URL".to_owned(), "memory://".to_owned()),
            (
                "EXLLM_ALIASES__fast".to_owned(),
                "openai/gpt-4.1-nano".to_owned(),
            ),
        ]);
        let settings = Settings::load(None, &env).expect("settings");
        let state = server::state(settings).await.expect("state");
        let app = server::router_with(state.clone(), options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            upstream,
            state,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Invent a holiday"}],
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

/// The `data:` payloads of an SSE body, in order, and the comment lines.
fn sse_payloads(text: &str) -> (Vec<String>, Vec<String>) {
    let mut data = Vec::new();
    let mut comments = Vec::new();
    for line in text.lines() {
        if let Some(payload) = line.strip_prefix("data: ") {
            data.push(payload.to_owned());
        } else if line.starts_with(':') {
            comments.push(line.to_owned());
        }
    }
    (data, comments)
}

fn assert_openai_error(body: &Value, kind: &str) {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["type"], kind, "{body}");
    assert!(error.get("param").is_some(), "{body}");
    assert!(error.get("code").is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_chat_has_the_openai_shape_and_the_gateway_headers() {
    let gw = Gateway::start(vec![Scripted::json(
        200,
        fixture("openai/chat-completion-text-gpt41nano.json"),
    )])
    .await;
    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-request-id", "client-req-1")
        .json(&chat_body("openai/gpt-4.1-nano", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["x-request-id"], "client-req-1");
    assert_eq!(headers["x-exllm-provider"], "openai");
    assert!(
        headers["x-exllm-cost-usd"]
            .to_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    assert!(
        headers["x-exllm-overhead-us"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU");
    assert!(body["created"].as_u64().unwrap() > 0);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(
        choice["message"]["content"]
            .as_str()
            .unwrap()
            .contains("Galaxy Day")
    );
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 363);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + 363)
    );
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["completion_tokens_details"]["reasoning_tokens"].is_u64());

    // The upstream got the request with the provider key, and the model id without prefix.
    let sent = &gw.upstream.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {SENTINEL_KEY}").as_str())
    );
    assert_eq!(sent.body_json().unwrap()["model"], "gpt-4.1-nano");

    // A request without an id gets one generated.
    let resp = gw
        .post("/v1/chat/completions", &chat_body("fast", false))
        .await;
    assert_eq!(resp.status(), 200, "aliases resolve");
    assert!(
        resp.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sends_chunks_a_usage_chunk_and_done() {
    let sse = jsonl_to_sse(&fixture(
        "openai/stream-text-gpt41nano-with-usage.chunks.jsonl",
    ));
    let gw = Gateway::start(vec![Scripted::sse(200, sse)]).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            &chat_body("openai/gpt-4.1-nano", true),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(resp.headers()["x-exllm-provider"], "openai");
    assert!(resp.headers().contains_key("x-request-id"));
    assert!(resp.headers().contains_key("x-exllm-overhead-us"));
    let text = resp.text().await.unwrap();
    let (data, _) = sse_payloads(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(content.len() > 100, "{content}");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 16);
    assert_eq!(usage["usage"]["completion_tokens"], 300);
    assert_eq!(usage["usage"]["total_tokens"], 316);
    assert_eq!(gw.state.metrics.streams_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_tool_calls_keep_their_index_id_name_and_arguments() {
    let gw = Gateway::start(vec![Scripted::sse(
        200,
        fixture("openai/stream-parallel-tool-calls-gpt4o.sse"),
    )])
    .await;
    let resp = gw
        .post("/v1/chat/completions", &chat_body("openai/gpt-4o", true))
        .await;
    assert_eq!(resp.status(), 200);
    let (data, _) = sse_payloads(&resp.text().await.unwrap());
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for d in data.iter().filter(|d| *d != "[DONE]") {
        let chunk: Value = serde_json::from_str(d).unwrap();
        if let Some(reason) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
        for delta in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = delta["index"].as_u64().unwrap() as usize;
            if index == calls.len() {
                calls.push((
                    delta["id"].as_str().unwrap().to_owned(),
                    delta["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            }
            if let Some(args) = delta["function"]["arguments"].as_str() {
                calls[index].2.push_str(args);
            }
        }
    }
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].0.starts_with("call_"));
    assert_eq!(calls[0].1, "GetWeatherArgs");
    for (_, _, args) in &calls {
        assert!(
            serde_json::from_str::<Value>(args).unwrap().is_object(),
            "{args}"
        );
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_400_before_streaming_reaches_a_stream_client_as_a_400() {
    let gw = Gateway::start(vec![Scripted::json(
        400,
        fixture("openai/error-400-unsupported-parameter.json"),
    )])
    .await;
    let resp = gw
        .post("/v1/chat/completions", &chat_body("openai/gpt-4o", true))
        .await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_openai_error(&body, "invalid_request_error");
    assert_eq!(gw.state.metrics.streams_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_after_the_first_byte_ends_with_an_error_event() {
    let sse = fixture("openai/stream-text-gpt4o.sse");
    let first_two: String = sse
        .split("\n\n")
        .take(2)
        .map(|f| format!("{f}\n\n"))
        .collect();
    let gw = Gateway::start(vec![Scripted::reset_after(vec![first_two])]).await;
    let resp = gw
        .post("/v1/chat/completions", &chat_body("openai/gpt-4o", true))
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    let (data, _) = sse_payloads(&text);
    assert!(!data.iter().any(|d| d == "[DONE]"), "{text}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_openai_error(&last, "server_error");
    assert!(!text.contains(SENTINEL_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_gets_pings_and_a_client_that_leaves_ends_the_stream() {
    let sse = fixture("openai/stream-text-gpt4o.sse");
    // The role chunk carries no event: the text chunk after it is the stream's first event,
    // which the gateway waits for before it answers.
    let first: String = sse
        .split("\n\n")
        .take(2)
        .map(|f| format!("{f}\n\n"))
        .collect();
    let options = GatewayOptions {
        ping_interval: Duration::from_millis(100),
        ..GatewayOptions::default()
    };
    let gw = Gateway::start_with(vec![Scripted::stall_after(vec![first])], options).await;
    let resp = gw
        .post("/v1/chat/completions", &chat_body("openai/gpt-4o", true))
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(": ping") && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(bytes))) = tokio::time::timeout(Duration::from_secs(1), body.next()).await
        {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    assert!(seen.contains(": ping\n\n"), "{seen}");
    assert_eq!(gw.state.metrics.streams_in_flight(), 1);
    drop(body);
    // The gateway notices the closed connection on its next write (the next ping).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gw.state.metrics.streams_in_flight() != 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.state.metrics.streams_in_flight(), 0);
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("status=\"499\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_an_openai_error() {
    let options = GatewayOptions {
        max_body_bytes: 4096,
        ..GatewayOptions::default()
    };
    let gw = Gateway::start_with(
        vec![Scripted::json(
            200,
            fixture("openai/chat-completion-text-gpt41nano.json"),
        )],
        options,
    )
    .await;

    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("content-type", "application/json")
        .body(r#"{"model": "openai/gpt-4o", "messages": [}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_openai_error(&body, "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));

    for model in ["no-such-alias", "nosuch/model"] {
        let resp = gw
            .post("/v1/chat/completions", &chat_body(model, false))
            .await;
        assert_eq!(resp.status(), 404, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert_openai_error(&body, "invalid_request_error");
        assert_eq!(body["error"]["code"], "model_not_found");
    }

    let mut n2 = chat_body("openai/gpt-4o", false);
    n2["n"] = json!(2);
    assert_eq!(gw.post("/v1/chat/completions", &n2).await.status(), 400);

    // A field the OpenAI API does not have is refused as OpenAI refuses it.
    let mut unknown = chat_body("openai/gpt-4.1-nano", false);
    unknown["a_field_from_the_future"] = json!({"x": 1});
    let resp = gw.post("/v1/chat/completions", &unknown).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_openai_error(&body, "invalid_request_error");
    assert_eq!(body["error"]["code"], "unknown_parameter");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a_field_from_the_future")
    );

    // Every documented OpenAI parameter is accepted, even those this gateway does not use.
    let mut documented = chat_body("openai/gpt-4.1-nano", false);
    documented["user"] = json!("u-1");
    documented["parallel_tool_calls"] = json!(true);
    documented["store"] = json!(false);
    assert_eq!(
        gw.post("/v1/chat/completions", &documented).await.status(),
        200
    );

    let mut big = chat_body("openai/gpt-4o", false);
    big["messages"][0]["content"] = json!("x".repeat(8192));
    let resp = gw.post("/v1/chat/completions", &big).await;
    assert_eq!(resp.status(), 413);
    assert_openai_error(
        &resp.json::<Value>().await.unwrap(),
        "invalid_request_error",
    );

    // Only the one valid request reached the upstream.
    assert_eq!(gw.upstream.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_providers_models_and_aliases() {
    let gw = Gateway::start(vec![Scripted::json(
        200,
        r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1,"owned_by":"openai"}]}"#,
    )])
    .await;
    let resp = gw.get("/v1/models").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    assert!(
        data.iter()
            .all(|m| m["object"] == "model" && m["owned_by"].is_string())
    );
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"openai/gpt-4o-mini"), "{ids:?}");
    assert!(ids.contains(&"fast"), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_answer_in_floats_or_base64() {
    let upstream = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1.0]},{"object":"embedding","index":1,"embedding":[0.25,2.0]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
    let one = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1.0]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}}"#;
    let gw = Gateway::start(vec![
        Scripted::json(200, upstream),
        Scripted::json(200, one),
    ])
    .await;
    let resp = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "openai/text-embedding-3-small", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-exllm-provider"], "openai");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["embedding"], json!([0.5, -1.0]));
    assert_eq!(body["usage"]["prompt_tokens"], 4);

    let resp = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "openai/text-embedding-3-small", "input": "a", "encoding_format": "base64"}),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    // 0.5f32 = 00 00 00 3f, -1.0f32 = 00 00 80 bf (little-endian).
    assert_eq!(body["data"][0]["embedding"], "AAAAPwAAgL8=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_health_answers() {
    let gw = Gateway::start(vec![Scripted::json(
        200,
        fixture("openai/chat-completion-text-gpt41nano.json"),
    )])
    .await;
    assert_eq!(
        gw.post(
            "/v1/chat/completions",
            &chat_body("openai/gpt-4.1-nano", false)
        )
        .await
        .status(),
        200
    );
    let resp = gw.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "{line}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1]
                .split("\",")
                .filter(|p| !p.is_empty())
            {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(v.starts_with('"'), "{line}");
            }
        }
    }
    assert!(text.contains(
        "exllm_requests_total{route=\"/v1/chat/completions\",provider=\"openai\",status=\"200\"} 1"
    ));
    assert!(text.contains("exllm_tokens_total{provider=\"openai\",direction=\"output\"} 363"));
    assert!(text.contains("exllm_request_duration_seconds_bucket"));
    assert!(text.contains("exllm_overhead_seconds_count"));

    let resp = gw.get("/health").await;
    assert_eq!(resp.status(), 200);
    let resp = gw.get("/nowhere").await;
    assert_eq!(resp.status(), 404);
    assert_openai_error(
        &resp.json::<Value>().await.unwrap(),
        "invalid_request_error",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_each_provider() {
    // The OpenAI health check lists models: a 500 makes it unavailable.
    let gw = Gateway::start(vec![Scripted::json(
        500,
        fixture("openai/error-500-server-error.json"),
    )])
    .await;
    let resp = gw.get("/health/ready").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["providers"]["openai"]["status"], "unavailable");
    assert!(!body.to_string().contains(SENTINEL_KEY));
}

/// The real `exllm serve` process, its stderr captured: every log line it writes at the most
/// verbose level, across a plain call, a stream and an upstream error, and none holds the key.
/// (A process of its own: a thread-local subscriber in a test binary that runs tests in
/// parallel does not reliably see every event.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_key_never_appears_in_a_log_line() {
    let stream = jsonl_to_sse(&fixture(
        "openai/stream-text-gpt41nano-with-usage.chunks.jsonl",
    ));
    let upstream = FixtureServer::start(vec![
        Scripted::json(200, fixture("openai/chat-completion-text-gpt41nano.json")),
        Scripted::sse(200, stream),
        Scripted::json(401, fixture("openai/error-401-invalid-api-key.json")),
    ])
    .await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("exllm-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exllm"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("EXLLM_LOG", "trace")
        .env("EXLLM_DATABASE_URL", "memory://")
        .env("OPENAI_API_KEY", SENTINEL_KEY)
        .env("OPENAI_BASE_URL", format!("{}/v1", upstream.url()))
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Building an executor installs the TLS crypto provider reqwest needs.
    let _ = exllm_infrastructure::HttpExecutor::new(exllm_infrastructure::HttpConfig::default());
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "exllm serve did not come up");
    for (stream, status) in [(false, 200), (true, 200), (false, 401)] {
        let resp = http
            .post(format!("{base}/v1/chat/completions"))
            .json(&chat_body("openai/gpt-4.1-nano", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        let text = resp.text().await.unwrap();
        assert!(!text.contains(SENTINEL_KEY));
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        logs.contains("request_id"),
        "the access log was captured:\n{logs}"
    );
    assert!(logs.contains("status=401"), "{logs}");
    assert!(
        !logs.contains(SENTINEL_KEY),
        "the provider key leaked into the logs"
    );
}
