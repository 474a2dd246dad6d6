//! The facade through the public crate: providers, models, custom providers, errors.

use std::sync::Arc;

use exllm::prelude::*;
use exllm::testing::MockProvider;
use exllm::{ErrorKind, StreamAccumulator};

#[tokio::test]
async fn list_providers_and_register_at_run_time() {
    let exllm = ExLLM::builder()
        .provider(Arc::new(MockProvider::new()))
        .build();
    assert_eq!(exllm.list_providers(), ["mock"]);
    exllm.register_provider(Arc::new(MockProvider::named("custom").reply("from custom")));
    assert_eq!(exllm.list_providers(), ["custom", "mock"]);
    let reply = exllm.chat("custom/anything", "hi").await.unwrap();
    assert_eq!(reply.text(), "from custom");
    assert_eq!(reply.provider, "custom");
}

#[tokio::test]
async fn list_models_merges_catalogue_and_live_lists() {
    let exllm = ExLLM::builder()
        .provider(Arc::new(MockProvider::new()))
        .build();
    let models = exllm.list_models(Some("mock")).await.unwrap();
    assert!(models.iter().any(|m| m.id == "echo"), "{models:?}");
    let err = exllm.list_models(Some("nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn mock_replies_are_free_not_unknown() {
    let exllm = ExLLM::builder()
        .provider(Arc::new(MockProvider::new()))
        .build();
    let reply = exllm.chat("mock/echo", "count these words").await.unwrap();
    assert_eq!(reply.cost.unwrap().total_usd, exllm::Decimal::ZERO);
    assert!(reply.usage.input_tokens > 0);
}

#[tokio::test]
async fn a_mid_stream_error_is_handed_on_and_keeps_the_partial_reply() {
    let mut acc = StreamAccumulator::new("mock", "echo");
    let events = vec![acc.text("partial ")];
    let mock = MockProvider::new().reply_stream_then_fail(
        events,
        Error::new(ErrorKind::Unavailable, "overloaded mid-stream"),
    );
    let exllm = ExLLM::builder().provider(Arc::new(mock)).build();
    let stream = exllm.stream("mock/echo", "hi").await.unwrap();
    let err = exllm::stream::collect(stream).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.provider(), Some("mock"));
}

/// A user-written middleware that sees plain and streaming calls alike.
#[derive(Debug, Default)]
struct Tagging {
    seen: std::sync::Mutex<Vec<&'static str>>,
}

#[async_trait::async_trait]
impl exllm::Middleware for Tagging {
    async fn handle(
        &self,
        mut request: ChatRequest,
        next: exllm::Next<'_>,
    ) -> exllm::Result<ChatResponse> {
        self.seen.lock().unwrap().push("plain");
        request.temperature = Some(0.0);
        next.run(request).await
    }

    async fn handle_stream(
        &self,
        request: ChatRequest,
        next: exllm::Next<'_>,
    ) -> exllm::Result<exllm::ChatStream> {
        self.seen.lock().unwrap().push("stream");
        next.run_stream(request).await
    }
}

#[tokio::test]
async fn middleware_wraps_plain_and_streaming_calls() {
    let mock = Arc::new(MockProvider::new());
    let tagging = Arc::new(Tagging::default());
    let exllm = ExLLM::builder()
        .provider(mock.clone())
        .middleware(tagging.clone())
        .build();
    exllm.chat("mock/echo", "a").await.unwrap();
    let stream = exllm.stream("mock/echo", "b").await.unwrap();
    exllm::stream::collect(stream).await.unwrap();
    assert_eq!(*tagging.seen.lock().unwrap(), ["plain", "stream"]);
    assert_eq!(
        mock.requests()[0].temperature,
        Some(0.0),
        "the middleware changed the request"
    );
}

/// Embeddings through the facade: vectors in input order, usage, and the catalogue's price.
#[tokio::test]
async fn embed_prices_from_the_catalogue() {
    use exllm::http::{HttpConfig, HttpExecutor};
    use exllm::providers::{OpenAiConfig, OpenAiProvider};
    use exllm::testing::conformance::{FixtureServer, Scripted};

    // The shape of OpenAI's CreateEmbeddingResponse (openapi.yaml), items out of order.
    let reply = r#"{"object":"list","data":[
        {"object":"embedding","embedding":[0.5,0.25],"index":1},
        {"object":"embedding","embedding":[0.125,-0.5],"index":0}],
        "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    let server = FixtureServer::start(vec![Scripted::json(200, reply)]).await;
    let executor = HttpExecutor::new(HttpConfig::default()).unwrap();
    let config = OpenAiConfig::openai(Some("sk-test".into()), Some(format!("{}/v1", server.url())));
    let exllm = ExLLM::builder()
        .provider(Arc::new(OpenAiProvider::new(config, executor)))
        .build();
    let out = exllm
        .embed(
            "openai/text-embedding-3-small",
            vec!["first".into(), "second".into()],
        )
        .await
        .unwrap();
    assert_eq!(out.embeddings, vec![vec![0.125, -0.5], vec![0.5, 0.25]]);
    assert_eq!(out.usage.input_tokens, 8);
    // text-embedding-3-small: $0.02 per 1M tokens × 8 tokens.
    assert_eq!(out.cost.unwrap().total_usd.to_string(), "0.00000016");

    let err = exllm
        .embed("openai/text-embedding-3-small", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn per_call_middleware_runs_for_that_call_only() {
    let tagging = Arc::new(Tagging::default());
    let exllm = ExLLM::builder()
        .provider(Arc::new(MockProvider::new()))
        .build();
    let with = CallOptions::default().middleware(tagging.clone());
    exllm.chat_with("mock/echo", "a", &with).await.unwrap();
    exllm.chat("mock/echo", "b").await.unwrap();
    let stream = exllm.stream_with("mock/echo", "c", &with).await.unwrap();
    exllm::stream::collect(stream).await.unwrap();
    assert_eq!(*tagging.seen.lock().unwrap(), ["plain", "stream"]);
}

#[tokio::test]
async fn cache_false_travels_as_an_extension() {
    let mock = Arc::new(MockProvider::new());
    let exllm = ExLLM::builder().provider(mock.clone()).build();
    exllm
        .chat_with("mock/echo", "a", &CallOptions::default().cache(false))
        .await
        .unwrap();
    let seen = mock.requests()[0]
        .extensions
        .get::<exllm::CacheControl>()
        .copied();
    assert_eq!(seen, Some(exllm::CacheControl { enabled: false }));
}
