//! `exllm chat` against recorded OpenAI responses and the mock fallback.

use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::{Value, json};

use crate::{exllm, fixture, jsonl_to_sse, stdout_json};

const CONTRACT_KEYS: [&str; 8] = [
    "id",
    "provider",
    "model",
    "content",
    "tool_calls",
    "finish_reason",
    "usage",
    "cost",
];

fn assert_contract(v: &Value) {
    let obj = v.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = CONTRACT_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "exactly the contract's keys: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_json_prints_recorded_content_usage_and_catalogue_cost() {
    let body = fixture("openai/chat-completion-text-gpt41nano.json");
    let recorded: Value = serde_json::from_str(&body).unwrap();
    let server = FixtureServer::start(vec![Scripted::json(200, body)]).await;
    let base = format!("{}/v1", server.url());
    let out = exllm(
        &["chat", "--json", "-m", "openai/gpt-4o-mini", "hi"],
        &[("OPENAI_API_KEY", "x"), ("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_contract(&v);
    assert_eq!(v["content"], recorded["choices"][0]["message"]["content"]);
    assert_eq!(v["provider"], "openai");
    assert_eq!(v["model"], "gpt-4.1-nano-2025-04-14");
    assert_eq!(v["finish_reason"], "stop");
    assert_eq!(v["usage"]["input_tokens"], 16);
    assert_eq!(v["usage"]["output_tokens"], 363);
    // The reply names its snapshot, gpt-4.1-nano-2025-04-14, priced in the catalogue at
    // $0.10 in / $0.40 out per 1M tokens: 16 × 0.1e-6 + 363 × 0.4e-6.
    assert_eq!(v["cost"]["total_usd"], json!("0.0001468"));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].header("authorization"), Some("Bearer x"));
    let sent = requests[0].body_json().unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"][0]["content"], "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_json_prints_the_same_object_from_a_recorded_stream() {
    let jsonl = fixture("openai/stream-text-gpt41nano-with-usage.chunks.jsonl");
    let mut expected = String::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let chunk: Value = serde_json::from_str(line).unwrap();
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
            expected.push_str(text);
        }
    }
    let server = FixtureServer::start(vec![Scripted::sse(200, jsonl_to_sse(&jsonl))]).await;
    let base = format!("{}/v1", server.url());
    let out = exllm(
        &[
            "chat",
            "--stream",
            "--json",
            "-m",
            "openai/gpt-4o-mini",
            "hi",
        ],
        &[("OPENAI_API_KEY", "x"), ("OPENAI_BASE_URL", &base)],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_contract(&v);
    assert_eq!(v["content"], json!(expected));
    assert_eq!(v["finish_reason"], "stop");
    assert_eq!(v["usage"]["input_tokens"], 16);
    assert_eq!(v["usage"]["output_tokens"], 300);
    // 16 × 0.1e-6 + 300 × 0.4e-6
    assert_eq!(v["cost"]["total_usd"], json!("0.0001216"));
    let sent = server.requests()[0].body_json().unwrap();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_stream_json_agree_on_the_mock() {
    let plain = exllm(&["chat", "--json", "hello there"], &[], None).await;
    let streamed = exllm(&["chat", "--json", "--stream", "hello there"], &[], None).await;
    assert!(plain.status.success() && streamed.status.success());
    let (mut a, mut b) = (stdout_json(&plain), stdout_json(&streamed));
    assert_contract(&a);
    a["id"] = Value::Null;
    b["id"] = Value::Null;
    assert_eq!(a, b);
    assert_eq!(a["provider"], "mock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_replies_through_mock_and_says_so() {
    let out = exllm(&["chat", "hi"], &[], None).await;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("hi"), "stdout: {stdout}");
    assert!(
        stderr.contains("mock"),
        "stderr must say the mock answered: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_from_stdin() {
    let out = exllm(&["chat", "--json"], &[], Some("piped question\n")).await;
    assert!(out.status.success());
    let v = stdout_json(&out);
    assert!(
        v["content"].as_str().unwrap().contains("piped question"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_non_zero_with_the_error_object() {
    let body = fixture("openai/error-429-insufficient-quota.json");
    let server = FixtureServer::start(vec![Scripted::json(429, body)]).await;
    let base = format!("{}/v1", server.url());
    let out = exllm(
        &["chat", "--json", "-m", "openai/gpt-4o-mini", "hi"],
        &[
            ("OPENAI_API_KEY", "sk-SENTINEL-abcdef"),
            ("OPENAI_BASE_URL", &base),
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    let v = stdout_json(&out);
    let err = &v["error"];
    assert_eq!(err["kind"], "quota_exhausted");
    assert_eq!(err["status"], 429);
    assert_eq!(err["provider"], "openai");
    assert!(err.get("retry_after_ms").is_some());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("SENTINEL"), "the key leaked: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_come_before_any_io() {
    let server = FixtureServer::start(vec![Scripted::json(200, "{}")]).await;
    let base = format!("{}/v1", server.url());
    let env = [("OPENAI_API_KEY", "x"), ("OPENAI_BASE_URL", base.as_str())];
    let hot = exllm(
        &[
            "chat",
            "--json",
            "-m",
            "openai/gpt-4o-mini",
            "--temperature",
            "3",
            "hi",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(stdout_json(&hot)["error"]["kind"], "validation");
    let unknown = exllm(&["chat", "--json", "-m", "nope/model", "hi"], &env, None).await;
    let msg = stdout_json(&unknown)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("nope") && msg.contains("openai") && msg.contains("mock"),
        "{msg}"
    );
    let unconfigured = exllm(
        &["chat", "--json", "-m", "openai/gpt-4o-mini", "hi"],
        &[],
        None,
    )
    .await;
    assert!(!unconfigured.status.success());
    assert!(
        stdout_json(&unconfigured)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY")
    );
    assert_eq!(server.request_count(), 0, "nothing was sent");
}
