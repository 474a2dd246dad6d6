//! Shared helpers: fixture files, a provider pointed at a fixture server, request assertions.

use exllm_adapters_providers::{OpenAiConfig, OpenAiProvider};
use exllm_core::Secret;
use exllm_infrastructure::http::{HttpConfig, HttpExecutor};
use exllm_infrastructure::testing::{FixtureServer, RecordedRequest, Scripted};
use serde_json::Value;

/// The API key the tests send; assertions check it arrives as a bearer token.
pub const KEY: &str = "sk-test-0123456789";

/// The text of `shared/fixtures/openai/{name}`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/openai/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

/// A `.chunks.jsonl` recording as the SSE body OpenAI sends: one `data:` event per line, then
/// `data: [DONE]`.
pub fn jsonl_to_sse(jsonl: &str) -> String {
    let mut sse = String::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        sse.push_str("data: ");
        sse.push_str(line);
        sse.push_str("\n\n");
    }
    sse.push_str("data: [DONE]\n\n");
    sse
}

/// The JSON payloads of an SSE recording, `[DONE]` excluded.
pub fn sse_chunks(sse: &str) -> Vec<Value> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The concatenation of `delta[field]` over choice 0 of an SSE recording.
pub fn concat_deltas(sse: &str, field: &str) -> String {
    sse_chunks(sse)
        .iter()
        .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
        .filter(|choice| choice["index"] == 0)
        .filter_map(|choice| choice["delta"][field].as_str().map(str::to_owned))
        .collect()
}

/// A fixture server playing `script`, and an OpenAI provider whose base URL is its `/v1`.
pub async fn serve(script: Vec<Scripted>) -> (FixtureServer, OpenAiProvider) {
    let server = FixtureServer::start(script).await;
    let config = OpenAiConfig::openai(Some(Secret::new(KEY)), Some(format!("{}/v1", server.url())));
    let executor = HttpExecutor::new(HttpConfig::default()).expect("an HTTP executor");
    (server, OpenAiProvider::new(config, executor))
}

/// The one request the server received, checked to be an authenticated chat completion.
pub fn chat_request(server: &FixtureServer) -> (RecordedRequest, Value) {
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = requests.into_iter().next().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(
        request
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{request:?}"
    );
    let body = request.body_json().expect("a JSON request body");
    (request, body)
}
