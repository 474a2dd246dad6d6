//! Unit tests of the mock provider: scripts, echoes, streams and recorded requests.

use exllm_core::stream::collect;
use exllm_core::{ChatProvider, ChatRequest, Error, ErrorKind, FinishReason, StreamEvent, Usage};
use futures_util::StreamExt;
use serde_json::json;

use super::*;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

async fn events(mock: &MockProvider, request: ChatRequest) -> Vec<Result<StreamEvent>> {
    mock.stream(request).await.unwrap().collect().await
}

#[test]
fn the_default_reply_echoes_the_last_user_message_and_counts_words() {
    block_on(async {
        let mock = MockProvider::new();
        let request = ChatRequest::new("echo")
            .system("be kind")
            .user("first question")
            .user("hello there world");
        let response = mock.chat(request.clone()).await.unwrap();
        assert_eq!(response.text(), "mock reply: hello there world");
        assert_eq!(response.provider, "mock");
        assert_eq!(response.model, "echo");
        assert_eq!(response.id, "mock-1");
        assert_eq!(response.finish_reason, Some(FinishReason::Stop));
        // Input: 2 + 2 + 3 words; output: 5 words.
        assert_eq!(response.usage, Usage::new(7, 5));
        assert_eq!(mock.requests(), [request]);
    });
}

#[test]
fn scripted_replies_are_consumed_in_order() {
    block_on(async {
        let mock = MockProvider::named("openai")
            .reply("one")
            .reply_tool_call("get_weather", json!({"city": "Oslo"}))
            .fail(Error::new(ErrorKind::QuotaExhausted, "no credit"));
        assert_eq!(mock.remaining(), 3);
        let r1 = mock
            .chat(ChatRequest::new("gpt-4o").user("a"))
            .await
            .unwrap();
        assert_eq!(r1.text(), "one");
        assert_eq!(r1.provider, "openai");
        assert_eq!(r1.model, "gpt-4o");
        let r2 = mock
            .chat(ChatRequest::new("gpt-4o").user("b"))
            .await
            .unwrap();
        assert_eq!(r2.finish_reason, Some(FinishReason::ToolCalls));
        let call = r2.tool_calls()[0].clone();
        assert_eq!(
            (call.name.as_str(), call.arguments),
            ("get_weather", json!({"city": "Oslo"}))
        );
        let err = mock
            .chat(ChatRequest::new("gpt-4o").user("c"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::QuotaExhausted);
        assert_eq!(err.provider(), Some("openai"));
        assert_eq!(mock.remaining(), 0);
        assert_eq!(mock.last_request().unwrap().messages[0].text(), "c");
    });
}

#[test]
fn streams_split_text_into_word_deltas_and_end_with_done() {
    block_on(async {
        let mock = MockProvider::new().reply("one two  three");
        let events: Vec<_> = events(&mock, ChatRequest::new("echo").user("x"))
            .await
            .into_iter()
            .map(|e| e.unwrap())
            .collect();
        let deltas: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, ["one ", "two ", " ", "three"]);
        let Some(StreamEvent::Done(done)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(done.text(), "one two  three");
        assert_eq!(done.usage, Usage::new(1, 3));
        assert!(events.iter().any(|e| matches!(e, StreamEvent::Usage(_))));
    });
}

#[test]
fn streamed_tool_calls_replay_start_delta_end() {
    block_on(async {
        let mock = MockProvider::new()
            .reply_tool_calls(vec![("a".into(), json!({"x": 1})), ("b".into(), json!({}))]);
        let stream = mock
            .stream(ChatRequest::new("echo").user("x"))
            .await
            .unwrap();
        let response = collect(stream).await.unwrap();
        let names: Vec<_> = response
            .tool_calls()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(response.tool_calls()[0].arguments, json!({"x": 1}));
        assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    });
}

#[test]
fn stream_scripts_are_emitted_verbatim_and_may_fail_mid_stream() {
    block_on(async {
        let mock = MockProvider::new()
            .reply_stream_then_fail(
                vec![StreamEvent::TextDelta("par".into())],
                Error::new(ErrorKind::Unavailable, "overloaded"),
            )
            .reply_stream(vec![StreamEvent::TextDelta("no done".into())]);
        let got = events(&mock, ChatRequest::new("echo").user("x")).await;
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].as_ref().unwrap(),
            &StreamEvent::TextDelta("par".into())
        );
        let err = got[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.provider(), Some("mock"));
        // Without Done, a chat call sees a truncated stream.
        let err = mock
            .chat(ChatRequest::new("echo").user("x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StreamTruncated);
    });
}

#[test]
fn scripted_errors_fail_stream_calls_up_front() {
    block_on(async {
        let mock = MockProvider::new().fail(Error::new(ErrorKind::Auth, "bad key"));
        let err = mock
            .stream(ChatRequest::new("echo").user("x"))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Auth);
    });
}

#[test]
fn it_is_free_and_lists_one_model() {
    block_on(async {
        let mock = MockProvider::new();
        let models = mock.list_models().await.unwrap();
        assert_eq!(models.len(), 1);
        assert_eq!(models[0].address(), "mock/echo");
        assert_eq!(mock.pricing("anything"), Some(Pricing::default()));
        mock.health().await.unwrap();
    });
}
