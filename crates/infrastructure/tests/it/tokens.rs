//! Token counting: tiktoken's exact counts against known values and OpenAI's recorded usage,
//! the choice of counter per model, and the context strategies with an exact counter.

use exllm_core::context::{self, ContextStrategy, EstimateCounter, TokenCounter};
use exllm_core::{ChatRequest, ContentPart, ErrorKind, Message, Role, ToolCall, ToolDefinition};
use exllm_infrastructure::tokens::{Encoding, TiktokenCounter, counter_for};
use serde_json::{Value, json};

use crate::fixture_text;

fn o200k() -> TiktokenCounter {
    TiktokenCounter::new(Encoding::O200kBase)
}

fn cl100k() -> TiktokenCounter {
    TiktokenCounter::new(Encoding::Cl100kBase)
}

/// The `usage.prompt_tokens` OpenAI recorded in a fixture.
fn recorded_prompt_tokens(path: &str) -> u64 {
    let body: Value = serde_json::from_str(&fixture_text(path)).expect("fixture is JSON");
    body["usage"]["prompt_tokens"]
        .as_u64()
        .expect("fixture records prompt_tokens")
}

#[test]
fn text_counts_match_known_encodings() {
    // "hello world" is [15339, 1917] in cl100k_base and [24912, 2375] in o200k_base.
    assert_eq!(cl100k().count_text("hello world"), 2);
    assert_eq!(o200k().count_text("hello world"), 2);
    // The cookbook's example: "tiktoken is great!" is 6 tokens in both.
    assert_eq!(cl100k().count_text("tiktoken is great!"), 6);
    assert_eq!(o200k().count_text("tiktoken is great!"), 6);
    assert_eq!(o200k().count_text(""), 0);
    // A special token's spelling inside a message is ordinary text, not one special token.
    assert!(o200k().count_text("<|endoftext|>") > 1);
}

#[test]
fn models_map_to_their_encodings() {
    let encoding = |model: &str| TiktokenCounter::for_model(model).map(|c| c.encoding());
    for model in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1-nano-2025-04-14",
        "gpt-5",
        "gpt-5-mini",
        "o1",
        "o3-mini",
        "o4-mini",
        "chatgpt-4o-latest",
        "openai/gpt-4o",
        "ft:gpt-4o-mini-2024-07-18:org::abc123",
    ] {
        assert_eq!(encoding(model), Some(Encoding::O200kBase), "{model}");
    }
    for model in [
        "gpt-4",
        "gpt-4-turbo",
        "gpt-3.5-turbo",
        "text-embedding-3-small",
        "text-embedding-ada-002",
    ] {
        assert_eq!(encoding(model), Some(Encoding::Cl100kBase), "{model}");
    }
    for model in [
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "llama-3.3-70b-versatile",
        "openai/gpt-oss-120b",
        "mistral-large-latest",
        "",
    ] {
        assert_eq!(encoding(model), None, "{model}");
    }
    assert_eq!(Encoding::O200kBase.as_str(), "o200k_base");
}

#[test]
fn the_counter_is_exact_for_openai_models_and_a_labelled_estimate_elsewhere() {
    assert!(counter_for("openai", "gpt-4o-mini").is_exact());
    assert!(counter_for("openrouter", "openai/gpt-4.1").is_exact());
    assert!(counter_for("azure", "gpt-4").is_exact());
    for (provider, model) in [
        ("anthropic", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-flash"),
        ("groq", "llama-3.3-70b-versatile"),
        ("groq", "openai/gpt-oss-120b"),
        ("ollama", "gpt-4"),
        ("openai", "some-future-model"),
    ] {
        let counter = counter_for(provider, model);
        assert!(!counter.is_exact(), "{provider}/{model}");
        assert!(format!("{counter:?}").contains("Estimate"), "{counter:?}");
    }
    assert!(!EstimateCounter.is_exact());
}

#[test]
fn a_plain_prompt_counts_what_openai_recorded() {
    // vercel/ai's fixture (PROVENANCE.md) records the answer to the AI SDK examples' standard
    // prompt; one user message: 3 framing + 1 role + 9 text + 3 reply priming = 16.
    let request =
        ChatRequest::new("gpt-4.1-nano").user("Invent a new holiday and describe its traditions.");
    let counter = TiktokenCounter::for_model(&request.model).expect("an OpenAI model");
    assert_eq!(counter.count_text(&request.messages[0].text()), 9);
    let recorded = recorded_prompt_tokens("openai/chat-completion-text-gpt41nano.json");
    assert_eq!(recorded, 16);
    assert_eq!(counter.count_request(&request), recorded);
    // The stream of the same prompt recorded the same count.
    let stream = fixture_text("openai/stream-text-gpt41nano-with-usage.chunks.jsonl");
    let last: Value = serde_json::from_str(stream.lines().last().expect("chunks")).unwrap();
    assert_eq!(last["usage"]["prompt_tokens"].as_u64(), Some(recorded));
}

#[test]
fn tool_definitions_follow_the_cookbook_formula_close_to_recorded_usage() {
    // The recorded request (pydantic-ai cassette): one user message and one parameterless
    // tool with an empty description; OpenAI counted 46.
    let wire: Value = serde_json::from_str(&fixture_text(
        "openai/chat-completion-tool-call-gpt4o.request.json",
    ))
    .unwrap();
    let text = wire["messages"][0]["content"][0]["text"].as_str().unwrap();
    let function = &wire["tools"][0]["function"];
    let request = ChatRequest::new("gpt-4o").user(text).tool(ToolDefinition {
        name: function["name"].as_str().unwrap().to_owned(),
        description: function["description"].as_str().map(str::to_owned),
        parameters: function["parameters"].clone(),
        strict: None,
    });
    let counter = o200k();
    let messages = context::count_messages(&counter, &request.messages);
    // 3 + 1 + 15 ("What food is in the image you can get from the get_image tool?") + 3.
    assert_eq!(messages, 22);
    // 7 to open the function, "get_image:" 3, 12 to close the block.
    assert_eq!(counter.count_tools(&request.tools), 22);
    let recorded = recorded_prompt_tokens("openai/chat-completion-tool-call-gpt4o.response.json");
    assert_eq!(recorded, 46);
    // OpenAI does not document how tools are rendered; the cookbook's formula lands within
    // two tokens here, which is what the reserve in the context budget is for.
    assert_eq!(counter.count_request(&request), 44);
}

#[test]
fn properties_and_enums_count_per_the_cookbook() {
    let tool = ToolDefinition::new(
        "get_weather",
        "Get the weather.",
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city."},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
        }),
    );
    let counter = o200k();
    let t = |s: &str| counter.count_text(s);
    // Function start 7 and its line; properties start 3; per property a key (3) and its
    // line; an enum starts at -3, each value 3 plus its text; the block ends with 12.
    let function = 7 + t("get_weather:Get the weather");
    let city = 3 + t("city:string:The city");
    let unit = 3 + t("unit:string:") + (3 + t("c")) + (3 + t("f")) - 3;
    let expected = function + 3 + city + unit + 12;
    assert_eq!(counter.count_tools(&[tool]), expected);
    assert_eq!(counter.count_tools(&[]), 0);
}

#[test]
fn messages_count_as_the_openai_adapter_sends_them() {
    let counter = o200k();
    let t = |s: &str| counter.count_text(s);
    // One token per role name in o200k.
    for role in ["system", "user", "assistant", "tool"] {
        assert_eq!(t(role), 1, "{role}");
    }
    assert_eq!(
        counter.count_message(&Message::user("hello world")),
        3 + 1 + 2
    );

    let call = Message::new(
        Role::Assistant,
        vec![
            ContentPart::text("Let me look."),
            ContentPart::ToolCall(ToolCall::new(
                "call_1",
                "get_weather",
                json!({"city": "Paris"}),
            )),
            // Chat Completions takes no reasoning input; it costs nothing here.
            ContentPart::Reasoning(exllm_core::Reasoning {
                text: "thinking hard".into(),
                ..Default::default()
            }),
        ],
    );
    assert_eq!(
        counter.count_message(&call),
        3 + 1 + t("Let me look.") + t("get_weather") + t(r#"{"city":"Paris"}"#) + 1
    );

    // Anthropic-shaped: two tool results in one user message become two `tool` messages.
    let results = Message::new(
        Role::User,
        vec![
            ContentPart::ToolResult(exllm_core::ToolResult {
                call_id: "call_1".into(),
                name: None,
                content: "sunny".into(),
                is_error: false,
            }),
            ContentPart::ToolResult(exllm_core::ToolResult {
                call_id: "call_2".into(),
                name: None,
                content: "rainy".into(),
                is_error: false,
            }),
        ],
    );
    assert_eq!(
        counter.count_message(&results),
        (3 + 1 + t("sunny")) + (3 + 1 + t("rainy"))
    );
    assert_eq!(
        counter.count_message(&Message::tool_result("call_1", "sunny")),
        3 + 1 + t("sunny")
    );

    // Images are the approximate part: a flat rate by detail, never their base64 length.
    let image = Message::user("What is this?")
        .with_part(ContentPart::image_base64("image/png", "A".repeat(50_000)));
    assert_eq!(
        counter.count_message(&image),
        3 + 1 + t("What is this?") + context::IMAGE_TOKENS_DEFAULT
    );
}

#[test]
fn the_strategies_fit_exactly_counted_conversations() {
    let counter = counter_for("openai", "gpt-4o");
    let mut messages = vec![Message::system("You are terse.")];
    for turn in 0..20 {
        messages.push(Message::user(format!(
            "Question number {turn}: what is {turn} squared?"
        )));
        messages.push(Message::assistant(format!("{}", turn * turn)));
    }
    messages.push(Message::new(
        Role::Assistant,
        vec![ContentPart::ToolCall(ToolCall::new(
            "c1",
            "calc",
            json!({"x": 21}),
        ))],
    ));
    messages.push(Message::tool_result("c1", "441"));
    messages.push(Message::user("And 22?"));
    let total = context::count_messages(counter.as_ref(), &messages);

    for strategy in [
        ContextStrategy::SlidingWindow,
        ContextStrategy::KeepSystemAndNewest,
    ] {
        let budget = total / 3;
        let kept = context::fit(&messages, budget, strategy, counter.as_ref()).unwrap();
        assert!(
            context::count_messages(counter.as_ref(), &kept) <= budget,
            "{strategy}"
        );
        assert_eq!(
            kept.first(),
            messages.first(),
            "{strategy}: the system prompt stays"
        );
        assert_eq!(
            kept.last(),
            messages.last(),
            "{strategy}: the newest question stays"
        );
        // The tool call and its result travel together.
        let call = kept.iter().position(|m| m.tool_calls().next().is_some());
        let result = kept.iter().position(|m| m.role == Role::Tool);
        assert_eq!(call.map(|c| c + 1), result, "{strategy}");
        assert!(kept.len() < messages.len(), "{strategy}");
    }

    let err = context::fit(
        &messages,
        total - 1,
        ContextStrategy::None,
        counter.as_ref(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
    assert!(
        err.message()
            .contains(&format!("{total} prompt tokens (counted exactly)")),
        "{err}"
    );

    let err = context::fit(
        &messages,
        10,
        ContextStrategy::SlidingWindow,
        counter.as_ref(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
    assert!(err.message().contains("budget of 10"), "{err}");
}

#[test]
fn fit_request_budgets_for_output_reserve_and_tools_with_the_exact_counter() {
    let counter = o200k();
    let request = ChatRequest::new("gpt-4o")
        .system("s")
        .user("an old question that will not fit")
        .message(Message::assistant("an old answer that will not fit either"))
        .user("new")
        .tool(ToolDefinition::new(
            "f",
            "does f",
            json!({"type": "object"}),
        ))
        .max_tokens(1_000);
    let tools = counter.count_tools(&request.tools);
    let needed = context::count_messages(&counter, &[Message::system("s"), Message::user("new")]);
    let fitted = context::fit_request(
        request.clone(),
        1_000 + 100 + tools + needed,
        1_000,
        100,
        ContextStrategy::SlidingWindow,
        &counter,
    )
    .unwrap();
    assert_eq!(
        fitted.messages,
        [Message::system("s"), Message::user("new")]
    );
    assert!(counter.count_request(&fitted) + 1_000 + 100 <= 1_000 + 100 + tools + needed);
}
