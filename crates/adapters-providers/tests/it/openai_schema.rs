//! The adapter's request bodies checked against `CreateChatCompletionRequest` in OpenAI's
//! published OpenAPI document (`shared/fixtures/openai/openapi.yaml`), without a network.

use std::sync::OnceLock;

use exllm_adapters_providers::openai::request_body;
use exllm_adapters_providers::{MaxTokensField, OpenAiConfig, OpenAiQuirks};
use exllm_core::{
    ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, Role, ToolCall, ToolChoice,
    ToolDefinition, ToolResult,
};
use jsonschema::Validator;
use serde_json::{Value, json};

use crate::fixtures::{fixture, fixture_json};

/// A validator for `CreateChatCompletionRequest`, built once: the YAML is 3 MB.
fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let spec: Value = serde_yaml_ng::from_str(&widen_huge_integers(&fixture("openapi.yaml")))
            .expect("openapi.yaml");
        // The spec is OpenAPI 3.1, whose schemas are JSON Schema 2020-12. Its `$ref`s point at
        // `#/components/schemas/…`, so the components ride along in the root document and
        // every reference resolves locally (no file or HTTP retrieval is compiled in).
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/components/schemas/CreateChatCompletionRequest",
            "components": {"schemas": spec["components"]["schemas"].clone()},
        });
        jsonschema::draft202012::new(&root).expect("a validator for CreateChatCompletionRequest")
    })
}

/// The spec bounds `seed` by ±9223372036854776000, an integer beyond 64 bits that neither
/// serde_json nor serde_yaml_ng can hold; written as a float (`….0`) it parses, and the bound
/// means the same.
fn widen_huge_integers(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 64);
    for line in yaml.lines() {
        out.push_str(line);
        let value = line.rsplit_once(": ").map_or("", |(_, v)| v.trim());
        let digits = value.strip_prefix('-').unwrap_or(value);
        if digits.len() >= 19 && digits.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(".0");
        }
        out.push('\n');
    }
    out
}

fn check(case: &str, body: &Value) {
    let errors: Vec<String> = validator()
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{case}: {errors:#?}\n{body:#}");
}

fn openai() -> OpenAiConfig {
    OpenAiConfig::openai(None, None)
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_current_weather",
        "Get the current weather in a given location",
        json!({
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        }),
    )
}

#[test]
fn the_validator_accepts_the_spec_examples_and_rejects_nonsense() {
    // The spec's own examples pass: the validator understands the document.
    check(
        "spec tools example",
        &fixture_json("request-tools.spec-example.json"),
    );
    check(
        "spec vision example",
        &fixture_json("request-vision-image-url.spec-example.json"),
    );
    check(
        "recorded vision request",
        &fixture_json("chat-completion-vision-base64-image.request.json"),
    );
    // And it is not vacuous.
    for bad in [
        json!({"model": "gpt-4o", "messages": []}),
        json!({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]}),
        json!({"model": "gpt-4o", "messages": [{"role": "tool", "content": "x"}]}),
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    ] {
        assert!(!validator().is_valid(&bad), "accepted {bad}");
    }
}

#[test]
fn text_request() {
    let request = ChatRequest::new("gpt-4.1-nano")
        .system("You are terse.")
        .user("Invent a new holiday.")
        .temperature(0.7)
        .top_p(0.9)
        .max_tokens(300)
        .stop("\n\n")
        .seed(7)
        .response_format(ResponseFormat::Text);
    check("text", &request_body(&openai(), &request, false).unwrap());
}

#[test]
fn tools_request_with_a_full_tool_round_trip() {
    let assistant = Message::new(
        Role::Assistant,
        vec![
            ContentPart::text("Let me look."),
            ContentPart::ToolCall(ToolCall::new(
                "call_1",
                "get_current_weather",
                json!({"location": "Boston, MA"}),
            )),
            ContentPart::ToolCall(ToolCall::new(
                "call_2",
                "get_current_weather",
                json!({"location": "Paris"}),
            )),
        ],
    );
    let results = Message::new(
        Role::Tool,
        vec![
            ContentPart::ToolResult(ToolResult {
                call_id: "call_1".into(),
                name: None,
                content: r#"{"temp": 21}"#.into(),
                is_error: false,
            }),
            ContentPart::ToolResult(ToolResult {
                call_id: "call_2".into(),
                name: None,
                content: "unavailable".into(),
                is_error: true,
            }),
        ],
    );
    let refused = Message::new(
        Role::Assistant,
        vec![ContentPart::Refusal {
            text: "I can't help with that.".into(),
        }],
    );
    for choice in [
        ToolChoice::Auto,
        ToolChoice::None,
        ToolChoice::Required,
        ToolChoice::Tool("get_current_weather".into()),
    ] {
        let request = ChatRequest::new("gpt-4o")
            .user("What is the weather like in Boston and Paris today?")
            .messages([assistant.clone(), results.clone(), refused.clone()])
            .user("thanks")
            .tool(ToolDefinition {
                strict: Some(false),
                ..weather_tool()
            })
            .tool_choice(choice);
        check("tools", &request_body(&openai(), &request, false).unwrap());
    }
}

#[test]
fn vision_request() {
    let message = Message::new(
        Role::User,
        vec![
            ContentPart::text("What is in these images?"),
            ContentPart::image_url("https://example.com/boardwalk.jpg"),
            ContentPart::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into(),
                },
                detail: Some("high".into()),
            },
        ],
    );
    let request = ChatRequest::new("gpt-4.1-nano")
        .message(message)
        .max_tokens(300);
    check("vision", &request_body(&openai(), &request, false).unwrap());
}

#[test]
fn streaming_request_with_usage() {
    let request = ChatRequest::new("gpt-4o-mini")
        .user("Say hi")
        .response_format(ResponseFormat::JsonSchema {
            name: "greeting".into(),
            schema: json!({"type": "object", "properties": {"hi": {"type": "string"}},
                           "required": ["hi"], "additionalProperties": false}),
            strict: true,
        });
    let body = request_body(&openai(), &request, true).unwrap();
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    check("stream", &body);

    let json_mode = ChatRequest::new("gpt-4o-mini")
        .user("Say hi as JSON")
        .response_format(ResponseFormat::JsonObject)
        .max_tokens(50);
    check(
        "json object",
        &request_body(&openai(), &json_mode, true).unwrap(),
    );
}

#[test]
fn the_max_tokens_quirk_still_fits_the_schema() {
    // `max_tokens` is deprecated but still part of the schema, which is what compatible
    // servers implement.
    let config = OpenAiConfig::compatible("vllm", "http://localhost:8000/v1", None)
        .quirks(OpenAiQuirks::default().max_tokens_field(MaxTokensField::MaxTokens));
    let request = ChatRequest::new("llama").user("hi").max_tokens(10);
    let body = request_body(&config, &request, true).unwrap();
    assert_eq!(body["max_tokens"], json!(10));
    check("max_tokens quirk", &body);
}
