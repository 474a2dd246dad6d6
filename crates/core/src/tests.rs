//! Unit tests of the core: cost arithmetic, the accumulator, validation, addresses.

use rust_decimal::Decimal;
use std::str::FromStr;

use crate::*;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn cost_prices_cached_input_at_the_cached_price() {
    let pricing = Pricing {
        input_per_mtok: dec("0.15"),
        output_per_mtok: dec("0.60"),
        cached_input_per_mtok: Some(dec("0.075")),
        ..Pricing::default()
    };
    let usage = Usage {
        input_tokens: 1_000_000,
        cached_input_tokens: 400_000,
        output_tokens: 2_000_000,
        ..Usage::default()
    };
    let cost = Cost::compute(&usage, &pricing);
    assert_eq!(cost.input_usd, dec("0.09"));
    assert_eq!(cost.cached_input_usd, dec("0.03"));
    assert_eq!(cost.output_usd, dec("1.2"));
    assert_eq!(cost.total_usd, dec("1.32"));
}

#[test]
fn cost_is_exact_for_small_counts() {
    let pricing = Pricing {
        input_per_mtok: dec("0.1"),
        output_per_mtok: dec("0.4"),
        ..Pricing::default()
    };
    let cost = Cost::compute(&Usage::new(16, 363), &pricing);
    // 16 * 0.1 / 1e6 + 363 * 0.4 / 1e6 = 0.0000016 + 0.0001452
    assert_eq!(cost.total_usd, dec("0.0001468"));
    assert_eq!(
        serde_json::to_value(cost).unwrap()["total_usd"],
        serde_json::json!("0.0001468")
    );
}

#[test]
fn accumulator_assembles_interleaved_tool_calls_per_index() {
    let mut acc = StreamAccumulator::new("openai", "gpt-4o");
    acc.tool_call_start(0, "a", "first");
    acc.tool_call_start(1, "b", "second");
    acc.tool_call_delta(0, "{\"x\":");
    acc.tool_call_delta(1, "{\"y\":");
    acc.tool_call_delta(0, "1}");
    acc.tool_call_delta(1, "2}");
    acc.finish_reason(Some(FinishReason::ToolCalls), Some("tool_calls"));
    let (events, resp) = acc.finish();
    assert_eq!(events.len(), 3, "two ends and done: {events:?}");
    let calls = resp.tool_calls();
    assert_eq!(calls[0].arguments, serde_json::json!({"x": 1}));
    assert_eq!(calls[1].arguments, serde_json::json!({"y": 2}));
}

#[test]
fn accumulator_keeps_invalid_arguments_verbatim() {
    let mut acc = StreamAccumulator::new("p", "m");
    acc.tool_call_start(0, "a", "f");
    acc.tool_call_delta(0, "{\"unterminated");
    let err = acc.truncated("cut");
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
    let partial = err.partial_response().unwrap();
    assert_eq!(
        partial.tool_calls()[0].arguments,
        serde_json::json!("{\"unterminated")
    );
}

#[test]
fn addresses_split_at_the_first_slash() {
    let a = ModelAddress::parse("openrouter/anthropic/claude-3").unwrap();
    assert_eq!(a.provider, "openrouter");
    assert_eq!(a.model, "anthropic/claude-3");
    let err = ModelAddress::parse("gpt-4o").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("model"));
}

#[test]
fn validation_rejects_bad_requests_before_io() {
    let ok = ChatRequest::new("m").user("hi");
    assert!(facade::validate(&ok).is_ok());
    let empty = ChatRequest::new("m");
    assert_eq!(
        facade::validate(&empty).unwrap_err().field(),
        Some("messages")
    );
    let hot = ChatRequest::new("m").user("hi").temperature(2.5);
    assert_eq!(
        facade::validate(&hot).unwrap_err().field(),
        Some("temperature")
    );
    let nan = ChatRequest::new("m").user("hi").temperature(f32::NAN);
    assert_eq!(
        facade::validate(&nan).unwrap_err().field(),
        Some("temperature")
    );
}

#[test]
fn secrets_never_print() {
    let s = Secret::new("sk-sentinel-123456");
    assert!(!format!("{s:?} {s}").contains("sentinel"));
    assert_eq!(s.scrub("key sk-sentinel-123456 here"), "key *** here");
}

#[test]
fn error_display_names_provider_status_and_code() {
    let err = Error::new(ErrorKind::QuotaExhausted, "You exceeded your current quota")
        .with_provider("openai")
        .with_status(429)
        .with_code("insufficient_quota");
    assert_eq!(
        err.to_string(),
        "openai: You exceeded your current quota (HTTP 429, insufficient_quota)"
    );
    assert!(!err.is_retryable());
    let body = ErrorBody::from(&err);
    assert_eq!(body.kind.as_str(), "quota_exhausted");
}

mod facade_with_mocked_provider {
    use std::sync::Arc;

    use async_trait::async_trait;
    use futures_util::StreamExt;
    use mockall::mock;

    use crate::*;

    mock! {
        #[derive(Debug)]
        pub Provider {}
        #[async_trait]
        impl ChatProvider for Provider {
            fn name(&self) -> &str;
            async fn chat(&self, request: ChatRequest) -> Result<ChatResponse>;
            async fn stream(&self, request: ChatRequest) -> Result<ChatStream>;
            async fn list_models(&self) -> Result<Vec<Model>>;
            async fn health(&self) -> Result<()>;
            fn pricing(&self, model: &str) -> Option<Pricing>;
        }
    }

    fn provider_named(name: &'static str) -> MockProvider {
        let mut p = MockProvider::new();
        p.expect_name().return_const(name.to_owned());
        p.expect_pricing().returning(|_| None);
        p
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn invalid_requests_never_reach_the_provider() {
        let mut p = provider_named("p");
        p.expect_chat().never();
        let exllm = ExLLM::builder().provider(Arc::new(p)).build();
        block_on(async {
            let err = exllm.chat("p/m", Vec::<Message>::new()).await.unwrap_err();
            assert_eq!(err.field(), Some("messages"));
            let err = exllm
                .chat_with("p/m", "hi", &CallOptions::default().temperature(-0.1))
                .await
                .unwrap_err();
            assert_eq!(err.field(), Some("temperature"));
            let err = exllm.chat("other/m", "hi").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound);
            assert!(err.message().contains("known providers: p"), "{err}");
        });
    }

    #[test]
    fn per_call_options_win_over_client_defaults() {
        let mut p = provider_named("p");
        p.expect_chat()
            .withf(|r| {
                r.model == "m"
                    && r.temperature == Some(0.9)
                    && r.max_tokens == Some(100)
                    && r.messages[0].role == Role::System
            })
            .times(1)
            .returning(|r| {
                let mut resp = ChatResponse::new("p", r.model);
                resp.usage = Usage::new(10, 5);
                Ok(resp)
            });
        let exllm = ExLLM::builder()
            .provider(Arc::new(p))
            .defaults(
                CallOptions::default()
                    .temperature(0.1)
                    .max_tokens(100)
                    .system("be brief"),
            )
            .build();
        block_on(async {
            let resp = exllm
                .chat_with("p/m", "hi", &CallOptions::default().temperature(0.9))
                .await
                .unwrap();
            assert_eq!(resp.provider, "p");
            assert!(resp.cost.is_none(), "unpriced model: no invented cost");
        });
    }

    #[test]
    fn the_provider_price_is_used_when_the_catalogue_has_none() {
        let mut p = MockProvider::new();
        p.expect_name().return_const("local".to_owned());
        p.expect_pricing().returning(|_| Some(Pricing::default()));
        p.expect_chat().returning(|r| {
            let mut resp = ChatResponse::new("local", r.model);
            resp.usage = Usage::new(1000, 1000);
            Ok(resp)
        });
        let exllm = ExLLM::builder().provider(Arc::new(p)).build();
        let resp = block_on(exllm.chat("local/llama", "hi")).unwrap();
        assert_eq!(resp.cost.unwrap().total_usd, Decimal::ZERO);
    }

    #[test]
    fn a_stream_without_done_is_truncated() {
        let mut p = provider_named("p");
        p.expect_stream().returning(|_| {
            let events = vec![Ok(StreamEvent::TextDelta("par".into()))];
            Ok(Box::pin(futures_util::stream::iter(events)) as ChatStream)
        });
        let exllm = ExLLM::builder().provider(Arc::new(p)).build();
        block_on(async {
            let mut s = exllm.stream("p/m", "hi").await.unwrap();
            assert!(matches!(
                s.next().await,
                Some(Ok(StreamEvent::TextDelta(_)))
            ));
            let err = s.next().await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::StreamTruncated);
            assert_eq!(err.provider(), Some("p"));
            assert!(s.next().await.is_none());
        });
    }

    #[test]
    fn aliases_and_default_model_resolve() {
        let exllm = ExLLM::builder()
            .alias("fast", "p/small")
            .default_model("p/big")
            .build();
        assert_eq!(exllm.resolve("fast").unwrap().model, "small");
        assert_eq!(exllm.resolve("").unwrap().model, "big");
    }
}

#[cfg(feature = "structured")]
mod structured_output {
    use std::sync::{Arc, Mutex};

    use crate::*;

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema, PartialEq)]
    struct City {
        name: String,
        population: u64,
    }

    /// Replies with the scripted texts in order and records the requests.
    #[derive(Debug, Default)]
    struct Replies {
        texts: Mutex<Vec<&'static str>>,
        seen: Mutex<Vec<ChatRequest>>,
    }

    #[async_trait::async_trait]
    impl ChatProvider for Replies {
        fn name(&self) -> &str {
            "r"
        }
        async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
            self.seen.lock().unwrap().push(request.clone());
            let text = self.texts.lock().unwrap().remove(0);
            let mut resp = ChatResponse::new("r", request.model);
            resp.content.push(ContentPart::text(text));
            resp.usage = Usage::new(10, 5);
            Ok(resp)
        }
        async fn stream(&self, _request: ChatRequest) -> Result<ChatStream> {
            Err(Error::new(ErrorKind::Unsupported, "no streams here"))
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn sends_the_schema_and_parses_fenced_json() {
        let p = Arc::new(Replies {
            texts: Mutex::new(vec![
                "```json\n{\"name\":\"Oslo\",\"population\":717710}\n```",
            ]),
            ..Replies::default()
        });
        let exllm = ExLLM::builder().provider(p.clone()).build();
        let city = run(exllm.chat_structured::<City>("r/m", "Capital of Norway?")).unwrap();
        assert_eq!(
            city.value,
            City {
                name: "Oslo".into(),
                population: 717_710
            }
        );
        assert_eq!(city.attempts, 1);
        let sent = &p.seen.lock().unwrap()[0];
        match &sent.response_format {
            Some(ResponseFormat::JsonSchema { name, schema, .. }) => {
                assert_eq!(name, "City");
                assert_eq!(schema["properties"]["population"]["type"], "integer");
            }
            other => panic!("no schema sent: {other:?}"),
        }
    }

    #[test]
    fn asks_once_more_with_the_validation_error() {
        let p = Arc::new(Replies {
            texts: Mutex::new(vec![
                r#"{"name":"Oslo","population":"many"}"#,
                r#"{"name":"Oslo","population":717710}"#,
            ]),
            ..Replies::default()
        });
        let exllm = ExLLM::builder().provider(p.clone()).build();
        let city = run(exllm.chat_structured::<City>("r/m", "Capital of Norway?")).unwrap();
        assert_eq!(city.attempts, 2);
        assert_eq!(
            city.response.usage.input_tokens, 20,
            "usage of both attempts"
        );
        let retry = &p.seen.lock().unwrap()[1];
        assert_eq!(retry.messages.len(), 3);
        assert!(
            retry.messages[2].text().contains("population"),
            "{:?}",
            retry.messages[2]
        );
    }

    #[test]
    fn a_second_misfit_is_a_decode_error_keeping_the_answer() {
        let p = Arc::new(Replies {
            texts: Mutex::new(vec!["not json", "still not json"]),
            ..Replies::default()
        });
        let exllm = ExLLM::builder().provider(p).build();
        let err = run(exllm.chat_structured::<City>("r/m", "?")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert_eq!(err.raw_body(), Some("still not json"));
    }
}

mod capabilities {
    use crate::*;

    fn model(vision: bool, tools: bool, window: u32) -> Model {
        let mut m = Model::named("p", "m");
        m.capabilities.vision = vision;
        m.capabilities.tools = tools;
        m.context_window = Some(window);
        m
    }

    #[test]
    fn images_tools_and_long_prompts_are_refused_before_io() {
        let image = ChatRequest::new("m").message(
            Message::user("look").with_part(ContentPart::image_url("https://example.com/a.png")),
        );
        let err = facade::check_capabilities(&model(false, true, 1000), &image).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Validation, Some("messages"))
        );
        assert!(facade::check_capabilities(&model(true, true, 1000), &image).is_ok());

        let tools = ChatRequest::new("m").user("hi").tool(ToolDefinition::new(
            "f",
            "does f",
            serde_json::json!({"type": "object"}),
        ));
        let err = facade::check_capabilities(&model(true, false, 1000), &tools).unwrap_err();
        assert_eq!(err.field(), Some("tools"));

        let long = ChatRequest::new("m").user("x".repeat(4 * 1000 + 4));
        let err = facade::check_capabilities(&model(true, true, 1000), &long).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
        assert!(err.message().contains("estimated"), "{err}");
    }
}

#[test]
fn extensions_travel_with_the_request_but_never_change_it() {
    let a = ChatRequest::new("m").user("hi");
    let b = a
        .clone()
        .extension(CallerKey("team-a".into()))
        .extension(CacheControl { enabled: false });
    assert_eq!(a, b, "extensions are not part of what the request asks");
    let c = b.clone();
    assert_eq!(
        c.extensions.get::<CallerKey>(),
        Some(&CallerKey("team-a".into()))
    );
    assert_eq!(
        c.extensions.get::<CacheControl>().map(|c| c.enabled),
        Some(false)
    );
    assert!(serde_json::to_string(&c).unwrap().find("team-a").is_none());
    let mut d = c;
    assert_eq!(
        d.extensions.remove::<CallerKey>(),
        Some(CallerKey("team-a".into()))
    );
    assert!(d.extensions.get::<CallerKey>().is_none());
}
