//! OpenAI failures: recorded error bodies, HTML pages, 200s carrying errors, and broken
//! streams, each mapped to the error a caller acts on.

use std::time::Duration;

use exllm_core::{ChatProvider, ChatRequest, Error, ErrorKind, Result, StreamEvent};
use exllm_infrastructure::testing::Scripted;
use futures_util::StreamExt;

use crate::fixtures::{KEY, fixture, serve};

/// What a failure must look like. `None` fields are not checked.
struct Expected {
    kind: ErrorKind,
    status: Option<u16>,
    code: Option<&'static str>,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Expected {
    fn kind(kind: ErrorKind) -> Self {
        Self {
            kind,
            status: None,
            code: None,
            retryable: kind.is_retryable(),
            retry_after: None,
        }
    }
    fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    fn assert(&self, err: &Error, case: &str) {
        assert_eq!(err.kind(), self.kind, "{case}: {err:?}");
        assert_eq!(err.provider(), Some("openai"), "{case}: {err:?}");
        if self.status.is_some() {
            assert_eq!(err.status(), self.status, "{case}: {err:?}");
        }
        if self.code.is_some() {
            assert_eq!(err.code(), self.code, "{case}: {err:?}");
        }
        assert_eq!(err.is_retryable(), self.retryable, "{case}: {err:?}");
        if self.retry_after.is_some() {
            assert_eq!(err.retry_after(), self.retry_after, "{case}: {err:?}");
        }
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(KEY), "{case}: the key leaked: {shown}");
    }
}

/// A plain call answered by `reply` must fail as `expected`.
async fn check(case: &str, reply: Scripted, expected: Expected) -> Error {
    let (_server, provider) = serve(vec![reply]).await;
    let err = provider
        .chat(ChatRequest::new("gpt-4o").user("hi"))
        .await
        .expect_err(case);
    expected.assert(&err, case);
    err
}

/// A streaming call answered by `reply` must end in an error as `expected`, after whatever
/// events came first; returns the error.
async fn check_stream(case: &str, reply: Scripted, expected: Expected) -> Error {
    let (_server, provider) = serve(vec![reply]).await;
    let err = match provider.stream(ChatRequest::new("gpt-4o").user("hi")).await {
        Err(err) => err,
        Ok(stream) => {
            let events: Vec<Result<StreamEvent>> = stream.collect().await;
            let (last, before) = events.split_last().expect(case);
            assert!(
                before.iter().all(|e| e.is_ok()),
                "{case}: only the last item is an error"
            );
            assert!(
                !before.iter().any(|e| matches!(e, Ok(StreamEvent::Done(_)))),
                "{case}: no Done before the error"
            );
            last.clone().expect_err(case)
        }
    };
    expected.assert(&err, case);
    err
}

#[tokio::test]
async fn http_errors() {
    check(
        "400 unsupported parameter",
        Scripted::json(400, fixture("error-400-unsupported-parameter.json")),
        Expected::kind(ErrorKind::InvalidRequest)
            .status(400)
            .code("unsupported_parameter"),
    )
    .await;
    check(
        "400 unsupported value",
        Scripted::json(
            400,
            fixture("error-400-unsupported-value-developer-role.response.json"),
        ),
        Expected::kind(ErrorKind::InvalidRequest).status(400),
    )
    .await;
    check(
        "401 invalid key",
        Scripted::json(401, fixture("error-401-invalid-api-key.json")),
        Expected::kind(ErrorKind::Auth)
            .status(401)
            .code("invalid_api_key"),
    )
    .await;
    check(
        "429 rate limit with retry-after",
        Scripted::json(429, fixture("error-429-rate-limit-exceeded-tpm.json"))
            .header("retry-after", "1"),
        Expected::kind(ErrorKind::RateLimited)
            .status(429)
            .code("rate_limit_exceeded")
            .retry_after(Duration::from_secs(1)),
    )
    .await;
    check(
        "429 insufficient quota",
        Scripted::json(429, fixture("error-429-insufficient-quota.json")),
        Expected::kind(ErrorKind::QuotaExhausted)
            .status(429)
            .code("insufficient_quota"),
    )
    .await;
    check(
        "500 server error",
        Scripted::json(500, fixture("error-500-server-error.json")),
        Expected::kind(ErrorKind::Unavailable).status(500),
    )
    .await;
    let err = check(
        "502 HTML page",
        Scripted::new(502).header("content-type", "text/html").body(
            "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
        ),
        Expected::kind(ErrorKind::Unavailable).status(502),
    )
    .await;
    assert!(
        err.raw_body()
            .is_some_and(|raw| raw.contains("502 Bad Gateway")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_200_carrying_an_error_is_an_error() {
    let (_server, provider) = serve(vec![Scripted::json(
        200,
        r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
    )])
    .await;
    let err = provider
        .chat(ChatRequest::new("gpt-4o").user("hi"))
        .await
        .unwrap_err();
    assert!(err.message().contains("server had an error"), "{err:?}");
    assert_eq!(err.provider(), Some("openai"));
}

#[tokio::test]
async fn the_key_never_appears_in_errors() {
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    check(
        "401 echoing the key",
        Scripted::json(401, body),
        Expected::kind(ErrorKind::Auth).status(401),
    )
    .await;
}

#[tokio::test]
async fn stream_errors_before_the_stream_starts() {
    check_stream(
        "429 on a stream",
        Scripted::json(429, fixture("error-429-rate-limit-exceeded-tpm.json"))
            .header("retry-after", "2"),
        Expected::kind(ErrorKind::RateLimited)
            .status(429)
            .retry_after(Duration::from_secs(2)),
    )
    .await;
    check_stream(
        "401 on a stream",
        Scripted::json(401, fixture("error-401-invalid-api-key.json")),
        Expected::kind(ErrorKind::Auth).status(401),
    )
    .await;
}

#[tokio::test]
async fn a_stream_cut_without_done_or_finish_reason_is_truncated_with_the_partial() {
    // The first six events of a real stream: role, then five text deltas.
    let sse = fixture("stream-text-gpt4o.sse");
    let head: String = sse.split_inclusive("\n\n").take(6).collect();
    let err = check_stream(
        "cut stream",
        Scripted::sse(200, head.clone()),
        Expected::kind(ErrorKind::StreamTruncated),
    )
    .await;
    let partial = err.partial_response().expect("the partial reply is kept");
    assert_eq!(
        partial.text(),
        crate::fixtures::concat_deltas(&head, "content")
    );
    assert_eq!(partial.text(), "I'm unable to provide real");
}

#[tokio::test]
async fn a_stream_reset_mid_way_keeps_the_partial() {
    let sse = fixture("stream-text-gpt4o.sse");
    let head: Vec<String> = sse
        .split_inclusive("\n\n")
        .take(3)
        .map(str::to_owned)
        .collect();
    let (_server, provider) = serve(vec![Scripted::reset_after(head)]).await;
    let events: Vec<Result<StreamEvent>> = provider
        .stream(ChatRequest::new("gpt-4o").user("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Transport | ErrorKind::StreamTruncated
        ),
        "{err:?}"
    );
    assert_eq!(
        err.partial_response().map(|p| p.text()).as_deref(),
        Some("I'm unable")
    );
}

#[tokio::test]
async fn an_in_band_error_event_fails_the_stream_with_the_partial() {
    let sse = fixture("stream-text-gpt4o.sse");
    let mut body: String = sse.split_inclusive("\n\n").take(3).collect();
    body.push_str(
        "event: error\ndata: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    );
    let (_server, provider) = serve(vec![Scripted::sse(200, body)]).await;
    let events: Vec<Result<StreamEvent>> = provider
        .stream(ChatRequest::new("gpt-4o").user("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(err.message().contains("server had an error"), "{err:?}");
    assert_eq!(
        err.partial_response().map(|p| p.text()).as_deref(),
        Some("I'm unable")
    );
}

#[tokio::test]
async fn an_empty_stream_is_an_error() {
    check_stream(
        "empty body",
        Scripted::sse(200, ""),
        Expected::kind(ErrorKind::StreamTruncated),
    )
    .await;
}

#[tokio::test]
async fn garbage_stream_data_is_a_decode_error() {
    for (case, body) in [
        (
            "not json",
            "data: {\"id\": \"chatcmpl-1\", \"choices\": [tru\n\n",
        ),
        ("binary-ish", "data: \u{1}\u{2}\u{fffd}\n\n"),
        ("wrong shape", "data: {\"choices\": \"nope\"}\n\n"),
    ] {
        let err = check_stream(
            case,
            Scripted::sse(200, body),
            Expected::kind(ErrorKind::Decode),
        )
        .await;
        assert!(err.raw_body().is_some(), "{case}: {err:?}");
    }
}
