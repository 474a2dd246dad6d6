//! Request translation and multi-turn round trips: thought signatures sent back unchanged on
//! the next turn (checked on the body the server receives), tool results named from their
//! calls, images, tool choice, generation settings, the model list and embeddings.

use exllm_adapters_providers::conformance::{self, FixtureServer, Scripted};
use exllm_adapters_providers::gemini::{
    GeminiConfig, model_path, parse_embeddings, parse_response, request_body,
};
use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, EmbedRequest, ErrorKind, FinishReason, ImageSource,
    Message, ModelKind, Reasoning, ResponseFormat, Role, ToolCall, ToolChoice, ToolDefinition,
    ToolResult,
};
use serde_json::{Value, json};

use super::{
    KEY, canonical, check_auth, first_signature, fixture, fixture_json, gemini, json_array_to_sse,
    llm_gemini_safety, tools_of, with_tools,
};

/// Runs turn one against `first`, builds turn two from core types — the request's messages,
/// `response.to_message()` and one result per call (no tool name: the adapter finds it) — and
/// returns the body the server received for turn two.
async fn second_turn_body(
    first: Scripted,
    second: Scripted,
    request: ChatRequest,
    stream: bool,
    result: &str,
) -> (Value, exllm_core::ChatResponse) {
    let server = FixtureServer::start(vec![first, second]).await;
    let provider = gemini(&server.url());
    let turn_one = if stream {
        exllm_core::stream::collect(provider.stream(request.clone()).await.unwrap())
            .await
            .expect("turn one")
    } else {
        provider.chat(request.clone()).await.expect("turn one")
    };
    let mut turn_two = request.message(turn_one.to_message());
    for call in turn_one.tool_calls() {
        turn_two = turn_two.message(Message::tool_result(call.id.clone(), result));
    }
    if stream {
        exllm_core::stream::collect(provider.stream(turn_two).await.unwrap())
            .await
            .expect("turn two");
    } else {
        provider.chat(turn_two).await.expect("turn two");
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    check_auth(&requests[1]).unwrap();
    (requests[1].body_json().expect("a JSON body"), turn_one)
}

/// The acceptance check: a Gemini thought signature survives a two-turn tool-use round trip,
/// checked on the request body sent on turn two, against llm-gemini's recorded second turn.
#[tokio::test]
async fn a_thought_signature_survives_a_two_turn_tool_round_trip() {
    let one = "llm-gemini/stream-json-array-gemini3-function-call-thought-signature";
    let two = "llm-gemini/stream-json-array-gemini3-echo-thought-signature-with-function-response";
    let signature = first_signature(&fixture_json(&format!("{one}.response.json")));
    let request = with_tools(
        ChatRequest::new("gemini-3-flash-preview").user("What is 5 times 3?"),
        tools_of(&fixture_json(&format!("{one}.request.json"))),
    )
    .extra_body("safetySettings", llm_gemini_safety());
    let (body, turn_one) = second_turn_body(
        Scripted::sse(
            200,
            json_array_to_sse(&fixture(&format!("{one}.response.json"))),
        ),
        Scripted::sse(
            200,
            json_array_to_sse(&fixture(&format!("{two}.response.json"))),
        ),
        request,
        true,
        "15",
    )
    .await;
    assert_eq!(
        turn_one.tool_calls()[0].signature.as_deref(),
        Some(signature.as_str())
    );

    // The functionCall part of turn two carries the identical signature.
    let model = &body["contents"][1];
    assert_eq!(model["role"], "model");
    assert_eq!(model["parts"][0]["functionCall"]["name"], "multiply");
    assert_eq!(model["parts"][0]["thoughtSignature"], json!(signature));
    // The made-up call id stays ExLLM's: Gemini gave none, so none is sent.
    assert!(model["parts"][0]["functionCall"].get("id").is_none());

    // And the whole turn has the recorded request's shape, except llm-gemini's extra empty
    // text part (it echoed the empty text of the first turn; ExLLM drops empty text).
    let mut recorded = canonical(&fixture_json(&format!("{two}.request.json")));
    if let Some(parts) = recorded["contents"][1]["parts"].as_array_mut() {
        parts.retain(|p| p != &json!({"text": ""}));
    }
    assert_eq!(body["contents"], recorded["contents"]);
    conformance::json_contains(&body, &recorded, "$").unwrap();
}

#[tokio::test]
async fn a_streamed_sse_signature_survives_the_round_trip() {
    let base = "stream-sse-function-call-thought-signature";
    let sse = fixture(&format!("{base}.response.sse"));
    let signature = first_signature(&Value::Array(super::sse_chunks(&sse)));
    let request = with_tools(
        ChatRequest::new("gemini-3-pro-preview")
            .user("What is the capital of the user country? Call the tool"),
        tools_of(&fixture_json(&format!("{base}.request.json"))),
    );
    let (body, _) = second_turn_body(
        Scripted::sse(200, sse),
        Scripted::sse(200, fixture("stream-sse-text.response.sse")),
        request,
        true,
        "France",
    )
    .await;
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "What is the capital of the user country? Call the tool"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_country", "args": {}}, "thoughtSignature": signature}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_country", "response": {"output": "France"}}}
            ]},
        ])
    );
}

#[tokio::test]
async fn parallel_calls_go_back_with_their_one_signature_and_named_results() {
    let base = "generate-content-function-call-gemini3";
    let response = fixture_json(&format!("{base}.response.json"));
    let request = with_tools(
        ChatRequest::new("gemini-3-flash-preview")
            .system("Tell three jokes. Generate topics with the generate_topic tool.")
            .user(""),
        tools_of(&fixture_json(&format!("{base}.request.json"))),
    );
    let (body, _) = second_turn_body(
        Scripted::json(200, response.to_string()),
        Scripted::json(200, fixture("generate-content-text.response.json")),
        request,
        false,
        "{\"topic\": \"cats\"}",
    )
    .await;
    let call = json!({"functionCall": {"name": "generate_topic", "args": {}}});
    let mut signed = call.clone();
    signed["thoughtSignature"] = json!(first_signature(&response));
    // A result that is a JSON object goes as that object.
    let result = json!({"functionResponse": {
        "name": "generate_topic", "response": {"output": {"topic": "cats"}}
    }});
    assert_eq!(body["contents"][1]["parts"], json!([signed, call, call]));
    assert_eq!(body["contents"][2]["role"], "user");
    assert_eq!(
        body["contents"][2]["parts"],
        json!([result, result, result])
    );
}

#[tokio::test]
async fn a_text_signature_goes_back_on_its_text_and_thoughts_as_thoughts() {
    let sse = fixture("stream-sse-thinking.response.sse");
    let chunks = super::sse_chunks(&sse);
    let server = FixtureServer::start(vec![Scripted::sse(200, sse)]).await;
    let response = exllm_core::stream::collect(
        gemini(&server.url())
            .stream(ChatRequest::new("gemini-2.5-pro").user("How do I cross the street?"))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let next = ChatRequest::new("gemini-2.5-pro")
        .user("How do I cross the street?")
        .message(response.to_message())
        .user("Thanks!");
    let body = request_body(&next).unwrap();
    assert_eq!(
        body["contents"][1]["parts"],
        json!([
            {"text": super::recorded_text(&chunks, true), "thought": true},
            {"text": super::recorded_text(&chunks, false),
             "thoughtSignature": first_signature(&Value::Array(chunks.clone()))},
        ])
    );
}

#[test]
fn a_trailing_signature_goes_back_on_an_empty_text_part() {
    let body = fixture_json("llm-gemini/stream-json-array-text.response.json");
    let signature = first_signature(&body);
    let history = Message::new(
        Role::Assistant,
        vec![
            ContentPart::text("Scoop"),
            ContentPart::Reasoning(Reasoning {
                text: String::new(),
                signature: Some(signature.clone()),
                redacted: None,
            }),
        ],
    );
    let request = ChatRequest::new("gemini-flash-latest")
        .user("Name?")
        .message(history);
    assert_eq!(
        request_body(&request).unwrap()["contents"][1]["parts"],
        json!([{"text": "Scoop"}, {"text": "", "thoughtSignature": signature}])
    );
}

fn body(request: &ChatRequest) -> Value {
    request_body(request).expect("a body")
}

#[test]
fn generation_settings_tool_choice_and_extra_body() {
    let request = ChatRequest::new("gemini-2.5-flash")
        .user("hi")
        .temperature(0.7)
        .top_p(0.9)
        .max_tokens(256)
        .stop("END")
        .seed(42)
        .tool(ToolDefinition::new(
            "f",
            "does f",
            json!({"type": "object"}),
        ))
        .tool_choice(ToolChoice::Tool("f".into()))
        .response_format(ResponseFormat::JsonObject)
        .extra_body(
            "generationConfig",
            json!({"thinkingConfig": {"thinkingBudget": 0}, "temperature": 0.2}),
        );
    assert_eq!(
        body(&request),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {
                // extra_body merges into generationConfig and wins where it overlaps.
                "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256,
                "stopSequences": ["END"], "seed": 42,
                "responseMimeType": "application/json",
                "thinkingConfig": {"thinkingBudget": 0},
            },
            "tools": [{"functionDeclarations": [
                {"name": "f", "description": "does f", "parametersJsonSchema": {"type": "object"}}
            ]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        })
    );
    for (choice, mode) in [
        (ToolChoice::Auto, "AUTO"),
        (ToolChoice::None, "NONE"),
        (ToolChoice::Required, "ANY"),
    ] {
        let request = ChatRequest::new("m").user("hi").tool_choice(choice);
        assert_eq!(
            body(&request)["toolConfig"],
            json!({"functionCallingConfig": {"mode": mode}})
        );
    }
    let err = request_body(&ChatRequest::new("m").user("hi").seed(1 << 40)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("seed"));
}

#[test]
fn images_inline_data_urls_files_and_refused_urls() {
    let message = Message::new(
        Role::User,
        vec![
            ContentPart::image_base64("image/png", "iVBORw0KGgo="),
            ContentPart::image_url("data:image/jpeg;base64,/9j/4AAQ"),
            ContentPart::image_url("https://generativelanguage.googleapis.com/v1beta/files/abc123"),
        ],
    );
    assert_eq!(
        body(&ChatRequest::new("m").message(message))["contents"][0]["parts"],
        json!([
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
            {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
        ])
    );
    let web = Message::new(
        Role::User,
        vec![
            ContentPart::text("what is this?"),
            ContentPart::Image {
                source: ImageSource::Url {
                    url: "https://example.com/cat.png".into(),
                },
                detail: None,
            },
        ],
    );
    let err = request_body(&ChatRequest::new("m").message(web)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("messages[0].content[1]"));
    assert!(err.message().contains("base64"), "{err}");
}

#[test]
fn tool_messages_merge_into_one_user_turn_and_results_find_their_names() {
    let mut call = ToolCall::new("u959pftr", "get_weather", json!({"city": "Cairo"}));
    call.signature = Some("sig".into());
    let request = ChatRequest::new("m")
        .system("be brief")
        .user("weather?")
        .message(Message::new(
            Role::Assistant,
            vec![
                ContentPart::ToolCall(call),
                ContentPart::ToolCall(ToolCall::new("gemini-call-1", "get_time", json!(null))),
            ],
        ))
        .message(Message::tool_result("u959pftr", "{\"temp\": 31}"))
        .message(Message::new(
            Role::Tool,
            vec![ContentPart::ToolResult(ToolResult {
                call_id: "gemini-call-1".into(),
                name: None,
                content: "clock broken".into(),
                is_error: true,
            })],
        ))
        .user("and now?");
    assert_eq!(
        body(&request),
        json!({
            "systemInstruction": {"parts": [{"text": "be brief"}], "role": "user"},
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Cairo"}, "id": "u959pftr"},
                     "thoughtSignature": "sig"},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"output": {"temp": 31}},
                                          "id": "u959pftr"}},
                    {"functionResponse": {"name": "get_time", "response": {"error": "clock broken"}}},
                    {"text": "and now?"},
                ]},
            ],
            "generationConfig": {},
        })
    );
}

#[test]
fn requests_gemini_cannot_express_are_validation_errors() {
    let orphan = ChatRequest::new("m").message(Message::tool_result("call_9", "42"));
    let err = request_body(&orphan).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("messages[0].content[0]"));

    let system_image = ChatRequest::new("m").message(Message::new(
        Role::System,
        vec![ContentPart::image_base64("image/png", "AAAA")],
    ));
    assert_eq!(
        request_body(&system_image).unwrap_err().kind(),
        ErrorKind::Validation
    );

    let broken_args = ChatRequest::new("m").message(Message::new(
        Role::Assistant,
        vec![ContentPart::ToolCall(ToolCall::new(
            "c",
            "f",
            json!("{not json"),
        ))],
    ));
    assert_eq!(
        request_body(&broken_args).unwrap_err().kind(),
        ErrorKind::Validation
    );

    for bad in [
        "",
        "gemini?key=x",
        "a b",
        "../v1/files",
        "m:generateContent",
    ] {
        let err = model_path(bad).unwrap_err();
        assert_eq!(err.field(), Some("model"), "{bad:?}");
    }
    assert_eq!(
        model_path("gemini-2.5-flash").unwrap(),
        "models/gemini-2.5-flash"
    );
    assert_eq!(
        model_path("models/gemini-2.5-flash").unwrap(),
        "models/gemini-2.5-flash"
    );
    assert_eq!(model_path("tunedModels/my-1").unwrap(), "tunedModels/my-1");
}

#[tokio::test]
async fn an_invalid_model_fails_before_any_io() {
    let server = FixtureServer::start(vec![]).await;
    let err = gemini(&server.url())
        .chat(ChatRequest::new("x?key=leak").user("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(server.request_count(), 0);
}

#[test]
fn finish_reasons_and_blocked_prompts() {
    let reply = |reason: &str| {
        json!({"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"},
                               "finishReason": reason}]})
    };
    for (raw, reason) in [
        ("STOP", Some(FinishReason::Stop)),
        ("MAX_TOKENS", Some(FinishReason::Length)),
        ("SAFETY", Some(FinishReason::ContentFilter)),
        ("RECITATION", Some(FinishReason::ContentFilter)),
        ("BLOCKLIST", Some(FinishReason::ContentFilter)),
        ("PROHIBITED_CONTENT", Some(FinishReason::ContentFilter)),
        ("SPII", Some(FinishReason::ContentFilter)),
        ("IMAGE_SAFETY", Some(FinishReason::ContentFilter)),
        ("MALFORMED_FUNCTION_CALL", None),
        ("OTHER", None),
    ] {
        let response = parse_response("gemini", "m", &reply(raw)).unwrap();
        assert_eq!(response.finish_reason, reason, "{raw}");
        assert_eq!(response.provider_finish_reason.as_deref(), Some(raw));
    }
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"},
                         "usageMetadata": {"promptTokenCount": 7}});
    let response = parse_response("gemini", "m", &blocked).unwrap();
    assert_eq!(response.finish_reason, Some(FinishReason::ContentFilter));
    assert_eq!(response.usage.input_tokens, 7);
    let err = parse_response("gemini", "m", &json!({"candidates": []})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.raw_body().is_some());
}

#[test]
fn cached_prompt_tokens_are_reported() {
    let body = json!({
        "candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 2000, "cachedContentTokenCount": 1500,
                          "candidatesTokenCount": 3, "thoughtsTokenCount": 10}
    });
    let usage = parse_response("gemini", "m", &body).unwrap().usage;
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens
        ),
        (2000, 1500, 13, 10)
    );
}

#[tokio::test]
async fn the_model_list_is_paged_and_loses_the_models_prefix() {
    // Hand-written pages in the shape of the API reference (ListModelsResponse).
    let page_one = json!({"models": [
        {"name": "models/gemini-2.5-flash", "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
         "supportedGenerationMethods": ["generateContent", "countTokens"]},
    ], "nextPageToken": "tok/2=="});
    let page_two = json!({"models": [
        {"name": "models/gemini-embedding-001", "supportedGenerationMethods": ["embedContent"]},
    ]});
    let server = FixtureServer::start(vec![
        Scripted::json(200, page_one.to_string()),
        Scripted::json(200, page_two.to_string()),
    ])
    .await;
    let models = gemini(&server.url()).list_models().await.unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["gemini-2.5-flash", "gemini-embedding-001"]);
    assert_eq!(models[0].context_window, Some(1_048_576));
    assert_eq!(models[1].kind, ModelKind::Embedding);
    assert!(models.iter().all(|m| m.provider == "gemini"));
    let requests = server.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/v1beta/models?pageSize=1000");
    assert_eq!(
        requests[1].path,
        "/v1beta/models?pageSize=1000&pageToken=tok%2F2%3D%3D"
    );
    for request in &requests {
        assert_eq!(request.header("x-goog-api-key"), Some(KEY));
    }
}

#[test]
fn embeddings_must_match_the_inputs() {
    let request = EmbedRequest::new(
        "gemini-embedding-001",
        vec!["a".into(), "b".into(), "c".into()],
    );
    let err = parse_embeddings(
        "gemini",
        &request,
        &serde_json::from_str(super::EMBED_REPLY).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let empty = EmbedRequest::new("gemini-embedding-001", vec![]);
    let err = exllm_adapters_providers::gemini::embed_body(&empty).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
}

#[test]
fn the_default_endpoint_is_the_public_api() {
    let config = GeminiConfig::new(None, None);
    assert_eq!(
        config.base_url,
        "https://generativelanguage.googleapis.com/v1beta"
    );
    assert_eq!(config.name, "gemini");
}
