//! The facade through the public crate: providers, models, custom providers, errors.

use std::sync::Arc;

use exllm::prelude::*;
use exllm::testing::MockProvider;
use exllm::{ErrorKind, StreamAccumulator};

#[tokio::test]
async fn list_providers_and_register_at_run_time() {
    let exllm = ExLLM::builder().provider(Arc::new(MockProvider::new())).build();
    assert_eq!(exllm.list_providers(), ["mock"]);
    exllm.register_provider(Arc::new(MockProvider::named("custom").reply("from custom")));
    assert_eq!(exllm.list_providers(), ["custom", "mock"]);
    let reply = exllm.chat("custom/anything", "hi").await.unwrap();
    assert_eq!(reply.text(), "from custom");
    assert_eq!(reply.provider, "custom");
}

#[tokio::test]
async fn list_models_merges_catalogue_and_live_lists() {
    let exllm = ExLLM::builder().provider(Arc::new(MockProvider::new())).build();
    let models = exllm.list_models(Some("mock")).await.unwrap();
    assert!(models.iter().any(|m| m.id == "echo"), "{models:?}");
    let err = exllm.list_models(Some("nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn mock_replies_are_free_not_unknown() {
    let exllm = ExLLM::builder().provider(Arc::new(MockProvider::new())).build();
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
