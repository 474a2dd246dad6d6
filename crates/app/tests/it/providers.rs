//! `exllm chat --json` for every provider, against recorded bodies served over TCP, configured
//! only through the standard environment variables (DESIGN §5).

use exllm_core::{Catalogue, Usage};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::{Value, json};

use crate::{exllm, fixture, stdout_json};

/// How one provider is pointed at the fixture server.
struct Target {
    provider: &'static str,
    model: &'static str,
    /// Environment variables; `{url}` is replaced by the server's URL.
    env: &'static [(&'static str, &'static str)],
}

const ANTHROPIC: Target = Target {
    provider: "anthropic",
    model: "claude-sonnet-4-5",
    env: &[
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("ANTHROPIC_BASE_URL", "{url}"),
    ],
};
const GEMINI: Target = Target {
    provider: "gemini",
    model: "gemini-2.5-flash",
    env: &[
        ("GEMINI_API_KEY", "AIza-test"),
        ("GEMINI_BASE_URL", "{url}/v1beta"),
    ],
};
const OLLAMA: Target = Target {
    provider: "ollama",
    model: "llama3.2:3b",
    env: &[("OLLAMA_HOST", "{url}")],
};
const GROQ: Target = Target {
    provider: "groq",
    model: "llama-3.3-70b-versatile",
    env: &[
        ("GROQ_API_KEY", "gsk_test"),
        ("GROQ_BASE_URL", "{url}/openai/v1"),
    ],
};

async fn chat(target: &Target, reply: Scripted, stream: bool) -> (Value, FixtureServer) {
    let server = FixtureServer::start(vec![reply]).await;
    let url = server.url();
    let env: Vec<(String, String)> = target
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.replace("{url}", &url)))
        .collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let address = format!("{}/{}", target.provider, target.model);
    let mut args = vec!["chat", "--json", "-m", address.as_str()];
    if stream {
        args.push("--stream");
    }
    args.push("hi");
    let out = exllm(&args, &env_refs, None).await;
    assert!(
        out.status.success(),
        "{address} stream={stream}: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout_json(&out), server)
}

fn usage(v: &Value) -> (u64, u64) {
    (
        v["usage"]["input_tokens"].as_u64().unwrap(),
        v["usage"]["output_tokens"].as_u64().unwrap(),
    )
}

/// The catalogue's cost for `usage` on `model`, as the CLI prints it (or null).
fn catalogue_cost(provider: &str, model: &str, usage: Usage) -> Value {
    match Catalogue::builtin().cost(provider, &[model], &usage) {
        Some(cost) => json!(cost.total_usd.to_string()),
        None => Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_plain_stream_and_tools() {
    let (v, server) = chat(
        &ANTHROPIC,
        Scripted::json(200, fixture("anthropic/messages-text.json")),
        false,
    )
    .await;
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(
        v["content"],
        "Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help you with?"
    );
    assert_eq!(usage(&v), (12, 29));
    // claude-sonnet-4-5-20250929 at $3 in / $15 out per 1M: 12 × 3e-6 + 29 × 15e-6.
    assert_eq!(v["cost"]["total_usd"], "0.000471");
    let req = &server.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("sk-ant-test"));

    let (v, _) = chat(
        &ANTHROPIC,
        Scripted::sse(200, fixture("anthropic/stream-text-short.response.sse")),
        true,
    )
    .await;
    assert_eq!(v["content"], "2");
    assert_eq!(usage(&v), (20, 5));
    assert_eq!(v["finish_reason"], "stop");

    let (v, _) = chat(
        &ANTHROPIC,
        Scripted::json(
            200,
            fixture("anthropic/messages-parallel-tool-use.response.json"),
        ),
        false,
    )
    .await;
    assert_eq!(v["finish_reason"], "tool_calls");
    assert_eq!(v["tool_calls"].as_array().unwrap().len(), 4);
    assert_eq!(v["tool_calls"][0]["arguments"], json!({"name": "Alice"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_plain_stream_and_tools() {
    let (v, server) = chat(
        &GEMINI,
        Scripted::json(200, fixture("gemini/generate-content-text.response.json")),
        false,
    )
    .await;
    assert_eq!(v["content"], "Hello! How can I help you today?");
    // Output counts the 34 thought tokens with the 9 candidate tokens.
    assert_eq!(usage(&v), (9, 43));
    assert_eq!(v["usage"]["reasoning_tokens"], 34);
    assert_eq!(
        v["cost"]["total_usd"],
        catalogue_cost(
            "gemini",
            "gemini-2.5-flash",
            Usage {
                input_tokens: 9,
                output_tokens: 43,
                reasoning_tokens: 34,
                ..Usage::default()
            }
        )
    );
    assert!(!v["cost"].is_null());
    let req = &server.requests()[0];
    assert_eq!(req.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(req.header("x-goog-api-key"), Some("AIza-test"));
    assert!(!req.path.contains("AIza"), "the key never goes in the URL");

    let (v, server) = chat(
        &GEMINI,
        Scripted::sse(200, fixture("gemini/stream-sse-text.response.sse")),
        true,
    )
    .await;
    assert_eq!(v["content"], "The capital of France is Paris.\n");
    assert_eq!(usage(&v), (13, 8));
    assert!(
        server.requests()[0]
            .path
            .ends_with(":streamGenerateContent?alt=sse")
    );

    let (v, _) = chat(
        &GEMINI,
        Scripted::json(
            200,
            fixture("gemini/generate-content-function-call-gemini3.response.json"),
        ),
        false,
    )
    .await;
    assert_eq!(v["finish_reason"], "tool_calls");
    assert!(v["tool_calls"][0]["arguments"].is_object(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_plain_stream_models_and_zero_cost() {
    let (v, server) = chat(
        &OLLAMA,
        Scripted::json(
            200,
            fixture("ollama/rust-genai/chat-local-cached-usage.json"),
        ),
        false,
    )
    .await;
    assert_eq!(
        v["content"],
        "Hello! It's nice to meet you. Is there something I can help you with or would you like to chat?"
    );
    assert_eq!(usage(&v), (28, 25));
    assert_eq!(v["cost"]["total_usd"], "0", "local models cost zero");
    assert_eq!(server.requests()[0].path, "/api/chat");

    let (v, _) = chat(
        &OLLAMA,
        Scripted::ndjson(
            200,
            fixture("ollama/rust-genai/stream-chat-local-cached-usage.ndjson"),
        ),
        true,
    )
    .await;
    assert_eq!(v["content"], "Hello!");
    assert_eq!(usage(&v), (28, 3));

    let server = FixtureServer::start(vec![Scripted::json(
        200,
        fixture("ollama/tags.response.terminal-paste.json"),
    )])
    .await;
    let out = exllm(
        &["models", "--provider", "ollama", "--json"],
        &[("OLLAMA_HOST", &server.url())],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let models = stdout_json(&out);
    assert!(
        models
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "llama3.2:latest"),
        "{models}"
    );
    assert_eq!(server.requests()[0].path, "/api/tags");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groq_plain_and_streamed_tool_call() {
    let (v, server) = chat(
        &GROQ,
        Scripted::json(200, fixture("groq/chat-completion-text.response.json")),
        false,
    )
    .await;
    assert_eq!(v["content"], "The capital of France is Paris.");
    assert_eq!(usage(&v), (48, 8));
    assert_eq!(
        v["cost"],
        catalogue_cost("groq", "llama-3.3-70b-versatile", Usage::new(48, 8)),
        "priced from the catalogue, or null when it has no price"
    );
    assert_eq!(server.requests()[0].path, "/openai/v1/chat/completions");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer gsk_test")
    );

    let (v, _) = chat(
        &GROQ,
        Scripted::sse(
            200,
            fixture("groq/stream-reasoning-then-tool-call-with-x-groq-usage.response.sse"),
        ),
        true,
    )
    .await;
    assert_eq!(v["finish_reason"], "tool_calls");
    assert_eq!(v["tool_calls"][0]["name"], "get_something_by_name");
    assert_eq!(v["tool_calls"][0]["arguments"], json!({"name": "example"}));
    assert_eq!(usage(&v), (304, 49));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatible_service_is_configured_by_its_variables_alone() {
    let server = FixtureServer::start(vec![Scripted::json(
        200,
        fixture("openai/chat-completion-text-gpt41nano.json"),
    )])
    .await;
    let base = format!("{}/v1", server.url());
    let out = exllm(
        &[
            "chat",
            "--json",
            "-m",
            "mistral/mistral-small-latest",
            "--max-tokens",
            "50",
            "hi",
        ],
        &[("MISTRAL_API_KEY", "mk"), ("EXLLM_MISTRAL_BASE_URL", &base)],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_json(&out)["provider"], "mistral");
    let req = &server.requests()[0];
    assert_eq!(req.header("authorization"), Some("Bearer mk"));
    // Mistral's dialect: `max_tokens`, not `max_completion_tokens`.
    assert_eq!(req.body_json().unwrap()["max_tokens"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_adds_a_compatible_service_in_exllm_toml_without_code() {
    let server = FixtureServer::start(vec![Scripted::json(
        200,
        fixture("openai/chat-completion-text-gpt41nano.json"),
    )])
    .await;
    let dir = std::env::temp_dir().join(format!("exllm-compat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("exllm.toml");
    std::fs::write(
        &path,
        format!(
            "[providers.myllm]\nkind = \"openai-compatible\"\nbase_url = \"{}/v1\"\napi_key_env = \"MYLLM_KEY\"\n[providers.myllm.headers]\nX-Team = \"search\"\n",
            server.url()
        ),
    )
    .unwrap();
    let config = path.to_string_lossy().to_string();
    let out = exllm(
        &[
            "chat",
            "--json",
            "--config",
            &config,
            "-m",
            "myllm/house-model",
            "hi",
        ],
        &[("MYLLM_KEY", "secret-house-key")],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["provider"], "myllm");
    assert_eq!(
        v["cost"],
        Value::Null,
        "no price is known for a house model: null, not a guess"
    );
    let req = &server.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer secret-house-key"));
    assert_eq!(req.header("x-team"), Some("search"));

    std::fs::write(
        &path,
        "[providers.broken]\nkind = \"openai-compatible\"\n[providers.other]\nkind = \"weird\"\n",
    )
    .unwrap();
    let out = exllm(
        &["config", "check", "--json", "--config", &config],
        &[],
        None,
    )
    .await;
    let problems = stdout_json(&out)["problems"].to_string();
    assert!(
        problems.contains("providers.broken") && problems.contains("base_url"),
        "{problems}"
    );
    assert!(problems.contains("providers.other"), "{problems}");
}
