//! The OpenAI-compatible family as data: every service's URL, and one request-shape or
//! response test per quirk. DeepSeek and Perplexity have no fixtures in `shared/fixtures/`;
//! their bodies below are constructed from their documented shapes and say so.

use exllm_adapters_providers::compatible::{self, CompatibleSpec, SERVICES};
use exllm_adapters_providers::openai::{ChunkDecoder, parse_response_with_quirks, request_body};
use exllm_adapters_providers::{OpenAiProvider, ReasoningField};
use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, Message, Reasoning, Role, Secret, StreamEvent,
};
use exllm_infrastructure::http::{HttpConfig, HttpExecutor};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::json;

use crate::fixtures::KEY;

#[test]
fn every_service_builds_a_config_whose_url_is_right() {
    let expected = [
        (
            "groq",
            "https://api.groq.com/openai/v1/chat/completions",
            Some("GROQ_API_KEY"),
        ),
        (
            "mistral",
            "https://api.mistral.ai/v1/chat/completions",
            Some("MISTRAL_API_KEY"),
        ),
        (
            "openrouter",
            "https://openrouter.ai/api/v1/chat/completions",
            Some("OPENROUTER_API_KEY"),
        ),
        (
            "xai",
            "https://api.x.ai/v1/chat/completions",
            Some("XAI_API_KEY"),
        ),
        (
            "deepseek",
            "https://api.deepseek.com/v1/chat/completions",
            Some("DEEPSEEK_API_KEY"),
        ),
        (
            "together",
            "https://api.together.xyz/v1/chat/completions",
            Some("TOGETHER_API_KEY"),
        ),
        // Perplexity has no `/v1`.
        (
            "perplexity",
            "https://api.perplexity.ai/chat/completions",
            Some("PERPLEXITY_API_KEY"),
        ),
        (
            "lmstudio",
            "http://localhost:1234/v1/chat/completions",
            None,
        ),
        ("vllm", "http://localhost:8000/v1/chat/completions", None),
        (
            "llamacpp",
            "http://localhost:8080/v1/chat/completions",
            None,
        ),
    ];
    assert_eq!(SERVICES.len(), expected.len());
    for (service, (name, url, key_env)) in SERVICES.iter().zip(expected) {
        assert_eq!(service.name, name);
        assert_eq!(service.api_key_env, key_env, "{name}");
        assert_eq!(service.needs_key(), key_env.is_some(), "{name}");
        let config = service.config(Some(Secret::new(KEY)), None);
        assert_eq!(config.name, name);
        assert_eq!(config.url("chat/completions"), url, "{name}");
        assert_eq!(config.quirks, service.quirks, "{name}");
        // A base URL given (from the service's variable or config) wins; empty means unset.
        let moved = service.config(None, Some("http://proxy.internal/x/".into()));
        assert_eq!(
            moved.url("embeddings"),
            "http://proxy.internal/x/embeddings"
        );
        let unset = service.config(None, Some(String::new()));
        assert_eq!(unset.base_url, service.base_url);
        assert!(!service.base_url_env.is_empty(), "{name}");
        assert_eq!(compatible::service(name), Some(service));
        assert_eq!(compatible::service(&name.to_uppercase()), Some(service));
    }
    assert_eq!(SERVICES[0].base_url_env, "GROQ_BASE_URL");
    assert_eq!(compatible::service("llama.cpp").unwrap().name, "llamacpp");
    assert_eq!(compatible::service("lm-studio").unwrap().name, "lmstudio");
    assert!(compatible::service("nope").is_none());
    assert_eq!(compatible::names().count(), SERVICES.len());
}

fn body(service: &str, request: &ChatRequest, stream: bool) -> serde_json::Value {
    let config = compatible::service(service).unwrap().config(None, None);
    request_body(&config, request, stream).unwrap()
}

#[test]
fn mistral_sends_random_seed_and_max_tokens() {
    let request = ChatRequest::new("mistral-small-latest")
        .user("hi")
        .seed(42)
        .max_tokens(64);
    let sent = body("mistral", &request, true);
    assert_eq!(sent["random_seed"], json!(42));
    assert_eq!(sent["max_tokens"], json!(64));
    assert_eq!(sent.get("seed"), None);
    assert_eq!(sent.get("max_completion_tokens"), None);
    assert_eq!(sent.get("stream_options"), None);
    // OpenAI itself is unchanged.
    let openai = exllm_adapters_providers::OpenAiConfig::openai(None, None);
    let sent = request_body(&openai, &request, true).unwrap();
    assert_eq!(sent["seed"], json!(42));
    assert_eq!(sent["max_completion_tokens"], json!(64));
}

#[test]
fn the_max_tokens_services_and_stream_usage_per_service() {
    let request = ChatRequest::new("m").user("hi").max_tokens(9);
    for name in [
        "mistral",
        "deepseek",
        "together",
        "perplexity",
        "lmstudio",
        "vllm",
        "llamacpp",
    ] {
        assert_eq!(
            body(name, &request, false)["max_tokens"],
            json!(9),
            "{name}"
        );
    }
    for name in ["groq", "openrouter", "xai"] {
        assert_eq!(
            body(name, &request, false)["max_completion_tokens"],
            json!(9),
            "{name}"
        );
    }
    for (name, asks) in [
        ("groq", false),
        ("deepseek", true),
        ("vllm", true),
        ("perplexity", false),
    ] {
        assert_eq!(
            body(name, &request, true).get("stream_options").is_some(),
            asks,
            "{name}"
        );
    }
}

async fn one_call(
    config: exllm_adapters_providers::OpenAiConfig,
) -> exllm_infrastructure::testing::RecordedRequest {
    let server = FixtureServer::start(vec![Scripted::json(
        200,
        r#"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#,
    )])
    .await;
    let config = exllm_adapters_providers::OpenAiConfig {
        base_url: format!("{}/api/v1", server.url()),
        ..config
    };
    let provider = OpenAiProvider::new(config, HttpExecutor::new(HttpConfig::default()).unwrap());
    let reply = provider
        .chat(ChatRequest::new("m").user("hi"))
        .await
        .unwrap();
    assert_eq!(reply.text(), "ok");
    server.requests().remove(0)
}

#[tokio::test]
async fn openrouter_sends_attribution_headers_that_can_be_overridden() {
    let openrouter = compatible::service("openrouter").unwrap();
    let sent = one_call(openrouter.config(Some(Secret::new(KEY)), None)).await;
    assert_eq!(sent.path, "/api/v1/chat/completions");
    assert_eq!(
        sent.header("http-referer"),
        Some(compatible::OPENROUTER_REFERER)
    );
    assert_eq!(sent.header("x-title"), Some("ExLLM"));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    let mine = openrouter
        .config(Some(Secret::new(KEY)), None)
        .set_header("x-title", "My App")
        .set_header("HTTP-Referer", "https://example.com/app");
    let sent = one_call(mine).await;
    assert_eq!(sent.header("x-title"), Some("My App"));
    assert_eq!(sent.header("http-referer"), Some("https://example.com/app"));
}

#[tokio::test]
async fn local_servers_send_no_authorization() {
    let vllm = compatible::service("vllm").unwrap();
    let sent = one_call(vllm.config(None, None)).await;
    assert_eq!(sent.header("authorization"), None);
}

/// A DeepSeek reply, CONSTRUCTED from DeepSeek's reasoning-model docs (`reasoning_content`
/// beside `content`); no DeepSeek recording exists in shared/fixtures.
const DEEPSEEK_REPLY: &str = r#"{"id":"ds-1","object":"chat.completion","model":"deepseek-reasoner",
  "choices":[{"index":0,"message":{"role":"assistant","reasoning_content":"9.11 < 9.8 since 0.11 < 0.8.","content":"9.8 is larger."},"finish_reason":"stop"}],
  "usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"completion_tokens_details":{"reasoning_tokens":20}}}"#;

#[test]
fn deepseek_reasoning_content_is_reasoning() {
    let deepseek = compatible::service("deepseek").unwrap();
    let body: serde_json::Value = serde_json::from_str(DEEPSEEK_REPLY).unwrap();
    let resp = parse_response_with_quirks("deepseek", &body, &deepseek.quirks).unwrap();
    assert_eq!(
        resp.reasoning().as_deref(),
        Some("9.11 < 9.8 since 0.11 < 0.8.")
    );
    assert_eq!(resp.text(), "9.8 is larger.");
    assert_eq!(resp.usage.reasoning_tokens, 20);
    assert!(matches!(resp.content[0], ContentPart::Reasoning(_)));

    // Streamed the same way (constructed deltas).
    let mut decoder = ChunkDecoder::with_quirks("deepseek", "deepseek-reasoner", &deepseek.quirks);
    let mut events = Vec::new();
    for data in [
        r#"{"id":"ds-2","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Compare "}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"decimals."}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"9.8","reasoning_content":null}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5}}"#,
        "[DONE]",
    ] {
        events.extend(decoder.data(data).unwrap());
    }
    events.extend(decoder.end().unwrap());
    assert!(events.contains(&StreamEvent::ReasoningDelta("Compare ".into())));
    let Some(StreamEvent::Done(done)) = events.last() else {
        panic!("no Done")
    };
    assert_eq!(done.reasoning().as_deref(), Some("Compare decimals."));
    assert_eq!(done.text(), "9.8");

    // OpenAI's reading ignores the field, so the quirk is what makes the difference.
    let plain = exllm_adapters_providers::openai::parse_response("deepseek", &body).unwrap();
    assert_eq!(plain.reasoning(), None);
}

#[test]
fn deepseek_reasoning_is_not_sent_back() {
    let assistant = Message::new(
        Role::Assistant,
        vec![
            ContentPart::Reasoning(Reasoning {
                text: "thinking".into(),
                ..Reasoning::default()
            }),
            ContentPart::text("9.8 is larger."),
        ],
    );
    let request = ChatRequest::new("deepseek-reasoner")
        .user("q")
        .message(assistant.clone());
    let sent = body("deepseek", &request, false);
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": "9.8 is larger."})
    );
    // Groq's `<think>` quirk sends it back inline instead.
    let sent = body("groq", &request, false);
    assert_eq!(
        sent["messages"][1]["content"],
        json!("<think>\nthinking\n</think>\n\n9.8 is larger.")
    );
}

#[test]
fn perplexity_citations_land_in_the_metadata() {
    // CONSTRUCTED from Perplexity's documented response (`citations` beside `choices`); no
    // Perplexity recording exists in shared/fixtures.
    let body = json!({"id": "p1", "model": "sonar",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris [1]."}, "finish_reason": "stop"}],
        "citations": ["https://example.com/paris"],
        "search_results": [{"title": "Paris", "url": "https://example.com/paris"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
    let perplexity = compatible::service("perplexity").unwrap();
    let resp = parse_response_with_quirks("perplexity", &body, &perplexity.quirks).unwrap();
    assert_eq!(
        resp.metadata["citations"],
        json!(["https://example.com/paris"])
    );
    assert_eq!(resp.metadata["search_results"][0]["title"], json!("Paris"));
    assert_eq!(resp.text(), "Paris [1].");
}

#[test]
fn a_spec_from_the_config_file_becomes_a_config() {
    // What `[providers.fireworks] kind = "openai-compatible" …` deserializes into; `kind` is
    // the app's business and is ignored here.
    let mut spec: CompatibleSpec = serde_json::from_value(json!({
        "kind": "openai-compatible",
        "base_url": "https://api.fireworks.ai/inference/v1",
        "api_key_env": "FIREWORKS_API_KEY",
        "max_tokens_field": "max_tokens",
        "stream_usage": false,
        "reasoning_field": "reasoning_content",
        "headers": {"X-Team": "ml"},
    }))
    .unwrap();
    assert_eq!(spec.api_key_env.as_deref(), Some("FIREWORKS_API_KEY"));
    spec.name = "fireworks".into();
    let config = spec.config(Some(Secret::new(KEY)));
    assert_eq!(config.name, "fireworks");
    assert_eq!(
        config.url("chat/completions"),
        "https://api.fireworks.ai/inference/v1/chat/completions"
    );
    assert_eq!(
        config.quirks.reasoning_field,
        ReasoningField::ReasoningContent
    );
    assert!(!config.quirks.stream_usage);
    assert_eq!(
        config.extra_headers,
        vec![("X-Team".to_owned(), "ml".to_owned())]
    );
    let sent = request_body(
        &config,
        &ChatRequest::new("m").user("hi").max_tokens(3),
        true,
    )
    .unwrap();
    assert_eq!(sent["max_tokens"], json!(3));
    assert_eq!(sent.get("stream_options"), None);

    // `like` starts from a known service: Mistral's seed field, OpenRouter's headers.
    let like: CompatibleSpec = serde_json::from_value(json!({
        "name": "my-mistral", "base_url": "http://gateway/mistral", "like": "mistral",
        "seed_field": "random_seed",
    }))
    .unwrap();
    let sent = request_body(
        &like.config(None),
        &ChatRequest::new("m").user("hi").seed(1),
        false,
    )
    .unwrap();
    assert_eq!(sent["random_seed"], json!(1));
    let mut router = CompatibleSpec::new("router", "http://gateway/or");
    router.like = Some("openrouter".into());
    assert!(
        router
            .config(None)
            .extra_headers
            .iter()
            .any(|(n, v)| n == "X-Title" && v == "ExLLM")
    );
    // A spec must say where the service is.
    assert!(serde_json::from_value::<CompatibleSpec>(json!({"name": "x"})).is_err());
    assert!(
        serde_json::from_value::<CompatibleSpec>(json!({"base_url": "u", "seed_field": "nonce"}))
            .is_err()
    );
}
