//! The HTTP executor against the fixture server over real TCP: status and body mapping with
//! recorded provider error bodies, retry headers, streams and their failures, and secrets.

use std::time::Duration;

use exllm_core::{Error, ErrorKind, Secret};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use exllm_infrastructure::{
    Auth, Frame, FrameStream, Framing, HttpConfig, HttpExecutor, HttpRequest, SseDecoder,
};
use futures_util::StreamExt;
use serde_json::json;

use crate::{fixture, fixture_text};

const SENTINEL: &str = "sk-sentinel-LEAK-7f3a9c";

fn executor() -> HttpExecutor {
    HttpExecutor::new(HttpConfig {
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_millis(200),
        max_line_bytes: 4096,
        max_body_bytes: 1024 * 1024,
    })
    .unwrap()
}

fn post(server: &FixtureServer) -> HttpRequest {
    HttpRequest::post(format!("{}/v1/chat", server.url()), json!({"model": "m"}))
        .auth(Auth::Bearer(Secret::new(SENTINEL)))
}

async fn json_error(script: Scripted) -> Error {
    let server = FixtureServer::start(vec![script]).await;
    executor().send_json("p", post(&server)).await.unwrap_err()
}

/// Collects a stream to its end, asserting that nothing follows an error.
async fn collect(mut stream: FrameStream) -> (Vec<Frame>, Option<Error>) {
    let mut frames = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(frame) => frames.push(frame),
            Err(err) => {
                assert!(
                    stream.next().await.is_none(),
                    "the stream must end after an error"
                );
                return (frames, Some(err));
            }
        }
    }
    (frames, None)
}

fn assert_no_leak(err: &Error) {
    for text in [format!("{err}"), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!text.contains(SENTINEL), "secret leaked: {text}");
        assert!(
            !text.contains("sk-sentinel"),
            "half a secret leaked: {text}"
        );
    }
}

#[tokio::test]
async fn a_json_response_comes_back_with_headers_and_the_request_goes_out_complete() {
    let server = FixtureServer::start(vec![
        Scripted::json(200, fixture_text("groq/chat-completion-text.response.json"))
            .header("x-request-id", "req_123")
            .header("x-ratelimit-limit-requests", "14400")
            .header("x-ratelimit-remaining-tokens", "5999")
            .header("x-ratelimit-reset-requests", "2m59.56s")
            .header("x-ratelimit-reset-tokens", "12ms"),
    ])
    .await;
    let response = executor()
        .send_json("groq", post(&server).header("x-extra", "1"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body["object"], "chat.completion");
    assert_eq!(response.request_id.as_deref(), Some("req_123"));
    let limits = response.rate_limit();
    assert_eq!(limits.limit_requests, Some(14400));
    assert_eq!(limits.remaining_tokens, Some(5999));
    assert_eq!(limits.reset_requests, Some(Duration::from_secs_f64(179.56)));
    assert_eq!(limits.reset_tokens, Some(Duration::from_millis(12)));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/chat")
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {SENTINEL}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.header("x-extra"), Some("1"));
    assert_eq!(request.body_json(), Some(json!({"model": "m"})));
}

#[tokio::test]
async fn a_header_auth_and_a_get_are_sent_as_asked() {
    let server = FixtureServer::start(vec![Scripted::json(200, "{\"models\":[]}")]).await;
    let request = HttpRequest::get(format!("{}/api/tags", server.url())).auth(Auth::Header {
        name: "x-api-key".into(),
        value: Secret::new(SENTINEL),
    });
    executor().send_json("anthropic", request).await.unwrap();
    let recorded = &server.requests()[0];
    assert_eq!(recorded.method, "GET");
    assert_eq!(recorded.header("x-api-key"), Some(SENTINEL));
    assert!(recorded.body.is_empty());
}

/// One recorded error body, what it is served with, and what it must become.
struct Case {
    provider: &'static str,
    file: &'static str,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    kind: ErrorKind,
    code: Option<&'static str>,
    request_id: Option<&'static str>,
    retry_after: Option<Duration>,
}

const fn case(provider: &'static str, file: &'static str, status: u16, kind: ErrorKind) -> Case {
    Case {
        provider,
        file,
        status,
        headers: &[],
        kind,
        code: None,
        request_id: None,
        retry_after: None,
    }
}

fn cases() -> Vec<Case> {
    use ErrorKind::*;
    vec![
        Case {
            code: Some("unsupported_parameter"),
            ..case(
                "openai",
                "openai/error-400-unsupported-parameter.json",
                400,
                InvalidRequest,
            )
        },
        Case {
            code: Some("invalid_api_key"),
            ..case("openai", "openai/error-401-invalid-api-key.json", 401, Auth)
        },
        Case {
            code: Some("insufficient_quota"),
            ..case(
                "openai",
                "openai/error-429-insufficient-quota.json",
                429,
                QuotaExhausted,
            )
        },
        Case {
            code: Some("rate_limit_exceeded"),
            ..case(
                "openai",
                "openai/error-429-rate-limit-exceeded-tpm.json",
                429,
                RateLimited,
            )
        },
        Case {
            code: Some("server_error"),
            ..case(
                "openai",
                "openai/error-500-server-error.json",
                500,
                Unavailable,
            )
        },
        Case {
            code: Some("invalid_request_error"),
            request_id: Some("req_011Ca7jT9AHpgXgdv8igm4z9"),
            ..case(
                "anthropic",
                "anthropic/error-400-invalid-request.response.json",
                400,
                InvalidRequest,
            )
        },
        Case {
            code: Some("authentication_error"),
            ..case(
                "anthropic",
                "anthropic/error-401-authentication.json",
                401,
                Auth,
            )
        },
        Case {
            code: Some("authentication_error"),
            ..case(
                "anthropic",
                "anthropic/error-401-authentication.json",
                403,
                Auth,
            )
        },
        Case {
            code: Some("not_found_error"),
            ..case(
                "anthropic",
                "anthropic/error-404-not-found-count-tokens.response.json",
                404,
                NotFound,
            )
        },
        Case {
            headers: &[("retry-after", "7")],
            code: Some("rate_limit_error"),
            retry_after: Some(Duration::from_secs(7)),
            ..case(
                "anthropic",
                "anthropic/error-429-rate-limit.json",
                429,
                RateLimited,
            )
        },
        Case {
            headers: &[
                ("x-should-retry", "true"),
                ("request-id", "req_01RCc7MbLyQNtGKzBTv8VCep"),
            ],
            code: Some("overloaded_error"),
            request_id: Some("req_01RCc7MbLyQNtGKzBTv8VCep"),
            ..case(
                "anthropic",
                "anthropic/error-529-overloaded.json",
                529,
                Unavailable,
            )
        },
        Case {
            code: Some("API_KEY_INVALID"),
            ..case("gemini", "gemini/error-400-api-key-invalid.json", 400, Auth)
        },
        Case {
            code: Some("INVALID_ARGUMENT"),
            ..case(
                "gemini",
                "gemini/error-400-invalid-argument-penalty.json",
                400,
                InvalidRequest,
            )
        },
        Case {
            code: Some("RESOURCE_EXHAUSTED"),
            retry_after: Some(Duration::from_secs(22)),
            ..case(
                "gemini",
                "gemini/error-429-resource-exhausted.json",
                429,
                RateLimited,
            )
        },
        Case {
            retry_after: Some(Duration::from_secs_f64(34.4)),
            ..case(
                "gemini",
                "gemini/error-429-retry-info.vercel-stub.json",
                429,
                RateLimited,
            )
        },
        Case {
            code: Some("UNAVAILABLE"),
            ..case(
                "gemini",
                "gemini/error-503-unavailable.json",
                503,
                Unavailable,
            )
        },
        Case {
            headers: &[("x-request-id", "req_01jngbvsctfy0bmjw87yea904b")],
            code: Some("invalid_api_key"),
            request_id: Some("req_01jngbvsctfy0bmjw87yea904b"),
            ..case("groq", "groq/error-401-invalid-api-key.json", 401, Auth)
        },
        Case {
            code: Some("model_not_found"),
            ..case(
                "groq",
                "groq/error-404-model-not-found.response.json",
                404,
                NotFound,
            )
        },
        Case {
            code: Some("tool_use_failed"),
            ..case(
                "groq",
                "groq/error-400-tool-use-failed.response.json",
                400,
                InvalidRequest,
            )
        },
        Case {
            code: Some("rate_limit_exceeded"),
            ..case(
                "groq",
                "groq/error-429-rate-limit-exceeded.json",
                429,
                RateLimited,
            )
        },
        case(
            "ollama",
            "ollama/error-404-model-not-found.json",
            404,
            NotFound,
        ),
        case(
            "ollama",
            "ollama/error-400-does-not-support-tools.json",
            400,
            InvalidRequest,
        ),
        Case {
            code: Some("api_error"),
            ..case(
                "ollama",
                "ollama/error-400-openai-compat-v1-does-not-support-tools.json",
                400,
                InvalidRequest,
            )
        },
        // Statuses the recordings lack, with bodies of the recorded shapes.
        case("openai", "openai/error-500-server-error.json", 408, Timeout),
        case(
            "openai",
            "openai/error-500-server-error.json",
            409,
            Unavailable,
        ),
        case(
            "anthropic",
            "anthropic/error-401-authentication.json",
            413,
            Auth,
        ),
        case(
            "openai",
            "openai/error-500-server-error.json",
            413,
            InvalidRequest,
        ),
    ]
}

#[tokio::test]
async fn recorded_error_bodies_map_to_typed_errors() {
    let cases = cases();
    let script = cases
        .iter()
        .map(|c| {
            c.headers.iter().fold(
                Scripted::new(c.status)
                    .header("content-type", "application/json")
                    .body(fixture(c.file)),
                |s, (n, v)| s.header(*n, *v),
            )
        })
        .collect();
    let server = FixtureServer::start(script).await;
    let executor = executor();
    for c in &cases {
        let request = post(&server);
        let err = executor.send_json(c.provider, request).await.unwrap_err();
        let what = format!("{} as HTTP {}: {err:?}", c.file, c.status);
        assert_eq!(err.kind(), c.kind, "{what}");
        assert_eq!(err.status(), Some(c.status), "{what}");
        assert_eq!(err.provider(), Some(c.provider), "{what}");
        if c.code.is_some() {
            assert_eq!(err.code(), c.code, "{what}");
        }
        if c.request_id.is_some() {
            assert_eq!(err.request_id(), c.request_id, "{what}");
        }
        assert_eq!(err.retry_after(), c.retry_after, "{what}");
        assert!(
            !err.message().is_empty() && !err.message().starts_with("HTTP"),
            "{what}"
        );
        assert_eq!(err.is_retryable(), c.kind.is_retryable(), "{what}");
    }
    assert_eq!(server.request_count(), cases.len());
}

#[tokio::test]
async fn body_codes_for_context_length_and_content_filter_win_over_the_status() {
    let err = json_error(Scripted::json(
        400,
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
    let err = json_error(Scripted::json(
        400,
        r#"{"error":{"message":"Your request was rejected.","type":"invalid_request_error","code":"content_policy_violation"}}"#,
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::ContentFiltered);
    let err = json_error(Scripted::json(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
}

#[tokio::test]
async fn retry_after_is_read_from_ms_seconds_and_http_dates() {
    let body = fixture_text("openai/error-429-rate-limit-exceeded-tpm.json");
    let err = json_error(
        Scripted::json(429, body.clone())
            .header("retry-after-ms", "1500")
            .header("retry-after", "9"),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));

    let err = json_error(Scripted::json(429, body.clone()).header("retry-after", "2.5")).await;
    assert_eq!(err.retry_after(), Some(Duration::from_millis(2500)));

    let when = std::time::SystemTime::now() + Duration::from_secs(120);
    let err = json_error(
        Scripted::json(429, body.clone()).header("retry-after", httpdate::fmt_http_date(when)),
    )
    .await;
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );

    // Gemini puts the wait only in the body; a header still wins when both exist.
    let err = json_error(
        Scripted::json(
            429,
            fixture_text("gemini/error-429-resource-exhausted.json"),
        )
        .header("retry-after", "3"),
    )
    .await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn x_should_retry_overrides_the_status() {
    let err = json_error(
        Scripted::json(500, fixture_text("openai/error-500-server-error.json"))
            .header("x-should-retry", "false"),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!err.is_retryable());
    let err = json_error(
        Scripted::json(
            400,
            fixture_text("openai/error-400-unsupported-parameter.json"),
        )
        .header("x-should-retry", "true"),
    )
    .await;
    assert!(err.is_retryable());
}

#[tokio::test]
async fn an_html_error_page_keeps_its_status_and_first_bytes() {
    let page = format!(
        "<html><head><title>502 Bad Gateway</title></head><body>{}</body></html>",
        "x".repeat(2000)
    );
    let err = json_error(
        Scripted::new(502)
            .header("content-type", "text/html; charset=utf-8")
            .body(page.clone()),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.status(), Some(502));
    assert!(err.is_retryable());
    assert_eq!(err.message(), "HTTP 502 with a non-JSON body (text/html)");
    let raw = err.raw_body().unwrap();
    assert_eq!(raw.len(), 512);
    assert!(page.starts_with(raw));

    let err = json_error(
        Scripted::new(403)
            .header("content-type", "text/plain")
            .body("Forbidden"),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(err.raw_body(), Some("Forbidden"));

    let err = json_error(Scripted::new(503)).await;
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.message(), "HTTP 503 with an empty body");
}

#[tokio::test]
async fn a_200_carrying_an_error_is_an_error() {
    let err = json_error(Scripted::json(
        200,
        fixture_text("openai/error-429-rate-limit-exceeded-tpm.json"),
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.status(), Some(200));

    let err = json_error(Scripted::json(
        200,
        r#"{"error":{"message":"something odd"}}"#,
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(err.message(), "something odd");

    let err = json_error(Scripted::json(
        200,
        fixture_text("anthropic/error-529-overloaded-with-request-id.json"),
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.request_id(), Some("req_011CZAau32QzxDkriovTaFCB"));

    // A result with `"error": null` is a result.
    let server =
        FixtureServer::start(vec![Scripted::json(200, r#"{"id":"resp_1","error":null}"#)]).await;
    let response = executor().send_json("openai", post(&server)).await.unwrap();
    assert_eq!(response.body["id"], "resp_1");
}

#[tokio::test]
async fn invalid_json_in_a_200_is_a_decode_error_with_the_raw_body() {
    let err = json_error(Scripted::json(
        200,
        "{\"id\": \"chatcmpl-1\", \"choices\": [",
    ))
    .await;
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.status(), Some(200));
    assert_eq!(
        err.raw_body(),
        Some("{\"id\": \"chatcmpl-1\", \"choices\": [")
    );

    let err = json_error(Scripted::new(200).body(vec![0xff, 0x00, 0xfe])).await;
    assert_eq!(err.kind(), ErrorKind::Decode);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let big = format!("{{\"a\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let err = json_error(Scripted::json(200, big)).await;
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("limit"), "{err}");
}

#[tokio::test]
async fn a_closed_port_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let request = HttpRequest::post(
        format!("http://127.0.0.1:{port}/v1/chat?key={SENTINEL}"),
        json!({}),
    )
    .auth(Auth::Bearer(Secret::new(SENTINEL)));
    let err = executor()
        .send_json("openai", request.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.is_retryable());
    assert_eq!(err.provider(), Some("openai"));
    assert_no_leak(&err);
    let err = match executor()
        .send_stream("openai", request, Framing::Sse)
        .await
    {
        Err(err) => err,
        Ok(_) => panic!("a stream from a closed port"),
    };
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_no_leak(&err);
}

#[tokio::test]
async fn a_stalled_json_body_hits_the_total_timeout() {
    let server = FixtureServer::start(vec![Scripted::stall_after(vec!["{\"id\":"])]).await;
    let executor = HttpExecutor::new(HttpConfig {
        total_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    })
    .unwrap();
    let err = executor.send_json("p", post(&server)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_recorded_sse_stream_arrives_frame_by_frame() {
    let raw = fixture("anthropic/stream-thinking-text.response.sse");
    let expected: Vec<Frame> = {
        let mut decoder = SseDecoder::default();
        let mut events = decoder.feed(&raw).unwrap();
        events.extend(decoder.finish().unwrap());
        events.into_iter().map(Frame::Sse).collect()
    };
    // Odd-sized chunks with pauses, so frames straddle chunk and packet boundaries.
    let chunks: Vec<Vec<u8>> = raw.chunks(777).map(<[u8]>::to_vec).collect();
    let server = FixtureServer::start(vec![
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(chunks)
            .delay(1),
    ])
    .await;
    let stream = executor()
        .send_stream("anthropic", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames, expected);
    assert_eq!(
        server.requests()[0].header("accept"),
        Some("text/event-stream")
    );
}

#[tokio::test]
async fn an_ndjson_stream_arrives_line_by_line() {
    let server = FixtureServer::start(vec![Scripted::ndjson(
        200,
        fixture_text("ollama/rust-genai/stream-chat-local-cached-usage.ndjson"),
    )])
    .await;
    let stream = executor()
        .send_stream("ollama", post(&server), Framing::Ndjson)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 3);
    assert!(matches!(&frames[2], Frame::Line(l) if l.contains("\"done\":true")));
    assert_eq!(
        server.requests()[0].header("accept"),
        Some("application/x-ndjson")
    );
}

#[tokio::test]
async fn a_stream_with_an_error_status_fails_before_any_frame() {
    let server = FixtureServer::start(vec![
        Scripted::json(429, fixture_text("anthropic/error-429-rate-limit.json"))
            .header("retry-after", "4"),
        Scripted::new(502)
            .header("content-type", "text/html")
            .body("<html>bad gateway</html>"),
    ])
    .await;
    let executor = executor();
    let Err(err) = executor
        .send_stream("anthropic", post(&server), Framing::Sse)
        .await
    else {
        panic!("expected an error");
    };
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(4)));
    let Err(err) = executor
        .send_stream("anthropic", post(&server), Framing::Sse)
        .await
    else {
        panic!("expected an error");
    };
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Unavailable, Some(502))
    );
    assert_eq!(err.raw_body(), Some("<html>bad gateway</html>"));
}

#[tokio::test]
async fn in_band_stream_errors_end_the_stream_as_errors() {
    let server = FixtureServer::start(vec![
        Scripted::sse(200, fixture_text("groq/stream-midstream-error-event-tool-use-failed.response.sse"))
            .header("x-request-id", "req_groq"),
        Scripted::sse(200, fixture_text("anthropic/stream-midstream-error-overloaded.ASSEMBLED.sse")),
        Scripted::ndjson(200, "{\"message\":{\"content\":\"Hi\"},\"done\":false}\n{\"error\":\"model runner crashed\"}\n{\"done\":true}\n"),
        Scripted::sse(200, "data: {\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n"),
        Scripted::sse(200, "event: error\ndata: upstream went away\n\n"),
    ])
    .await;
    let executor = executor();

    let stream = executor
        .send_stream("groq", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    let err = err.expect("groq's error event");
    assert_eq!(frames.len(), 94);
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(err.code(), Some("tool_use_failed"));
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.request_id(), Some("req_groq"));
    assert_eq!(err.provider(), Some("groq"));

    let stream = executor
        .send_stream("anthropic", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert!(frames.is_empty());
    let err = err.unwrap();
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::Unavailable, Some("overloaded_error"))
    );
    assert!(err.is_retryable());

    let stream = executor
        .send_stream("ollama", post(&server), Framing::Ndjson)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert_eq!(frames.len(), 1);
    let err = err.unwrap();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Provider, "model runner crashed")
    );

    let stream = executor
        .send_stream("openai", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(err.unwrap().kind(), ErrorKind::Unavailable);

    let stream = executor
        .send_stream("x", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert!(frames.is_empty());
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert!(err.message().contains("upstream went away"), "{err}");
}

#[tokio::test]
async fn a_json_error_where_a_stream_was_expected_is_an_error() {
    let server = FixtureServer::start(vec![
        Scripted::json(
            200,
            fixture_text("openai/error-429-insufficient-quota.json"),
        ),
        Scripted::json(200, "{\"model\":\"llama3\",\n  \"done\": true}"),
    ])
    .await;
    let executor = executor();
    let Err(err) = executor
        .send_stream("openai", post(&server), Framing::Sse)
        .await
    else {
        panic!("expected an error");
    };
    assert_eq!(err.kind(), ErrorKind::QuotaExhausted);
    // A whole JSON result is one frame, not lines of a pretty-printed object.
    let stream = executor
        .send_stream("ollama", post(&server), Framing::Ndjson)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert!(err.is_none());
    assert_eq!(
        frames,
        [Frame::Line("{\"done\":true,\"model\":\"llama3\"}".into())]
    );
}

#[tokio::test]
async fn a_stalled_stream_times_out_after_the_idle_timeout() {
    let server =
        FixtureServer::start(vec![Scripted::stall_after(vec!["data: {\"a\":1}\n\n"])]).await;
    let stream = executor()
        .send_stream("p", post(&server), Framing::Sse)
        .await
        .unwrap();
    // The outer deadline only keeps a broken executor from hanging the suite.
    let (frames, err) = tokio::time::timeout(Duration::from_secs(10), collect(stream))
        .await
        .unwrap();
    assert_eq!(frames.len(), 1);
    let err = err.expect("an idle timeout");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("200ms"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_a_stream_times_out() {
    // Accepts the connection but never reads or writes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(socket);
    });
    let request = HttpRequest::post(url, json!({}));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        executor().send_stream("p", request, Framing::Sse),
    )
    .await
    .unwrap();
    let Err(err) = result else {
        panic!("expected a timeout")
    };
    assert_eq!(err.kind(), ErrorKind::Timeout);
    holder.abort();
}

#[tokio::test]
async fn a_reset_mid_stream_is_a_transport_error() {
    let server = FixtureServer::start(vec![Scripted::reset_after(vec![
        "data: {\"a\":1}\n\n",
        "data: {\"b\"",
    ])])
    .await;
    let stream = executor()
        .send_stream("p", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, err) = tokio::time::timeout(Duration::from_secs(10), collect(stream))
        .await
        .unwrap();
    assert_eq!(frames.len(), 1);
    let err = err.expect("a broken stream");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");
    assert_eq!(err.provider(), Some("p"));
}

#[tokio::test]
async fn a_stream_line_over_the_limit_is_a_decode_error() {
    let long = format!("data: {}\n\n", "x".repeat(10_000));
    let server =
        FixtureServer::start(vec![Scripted::sse(200, format!("data: {{}}\n\n{long}"))]).await;
    let stream = executor()
        .send_stream("p", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, err) = collect(stream).await;
    assert_eq!(frames.len(), 1);
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("4096-byte limit"), "{err}");
}

#[tokio::test]
async fn pooled_connections_serve_many_requests() {
    let server = FixtureServer::start(vec![Scripted::json(200, "{\"ok\":true}")]).await;
    let executor = executor();
    for _ in 0..5 {
        let response = executor.send_json("p", post(&server)).await.unwrap();
        assert_eq!(response.body["ok"], true);
    }
    let stream = executor
        .send_stream("p", post(&server), Framing::Sse)
        .await
        .unwrap();
    let (frames, _) = collect(stream).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(server.request_count(), 6);
}

#[tokio::test]
async fn malformed_responses_never_panic() {
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"error\"".to_vec(),
        b"{\"error\":{\"code\":\"x\",\"details\":\"not-an-array\",\"status_code\":99999}}".to_vec(),
        b"{\"error\":{\"details\":[{\"retryDelay\":\"-5s\"},{\"retryDelay\":\"1e999s\"},{\"reason\":5}]}}".to_vec(),
        b"{\"type\":\"error\"}".to_vec(),
        b"{\"error\":[1,2]}".to_vec(),
        vec![0xc3; 3000],
    ];
    let mut script = Vec::new();
    for body in &bodies {
        for status in [200, 400, 429, 500] {
            script.push(
                Scripted::new(status)
                    .header("content-type", "application/json")
                    .header("retry-after", "garbage")
                    .body(body.clone()),
            );
        }
    }
    let count = script.len();
    let server = FixtureServer::start(script).await;
    let executor = executor();
    for _ in 0..count {
        let _ = executor.send_json("p", post(&server)).await;
    }
    assert_eq!(server.request_count(), count);
}

#[tokio::test]
async fn the_secret_never_leaks_into_errors_or_debug_output() {
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {SENTINEL}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    let html = format!("<html><body><pre>Authorization: Bearer {SENTINEL}</pre></body></html>");
    let mut long_html = "y".repeat(500);
    long_html.push_str(SENTINEL);
    let server = FixtureServer::start(vec![
        Scripted::json(401, echo.clone()).header("x-request-id", SENTINEL),
        Scripted::new(502)
            .header("content-type", "text/html")
            .body(html),
        Scripted::new(500)
            .header("content-type", "text/html")
            .body(long_html),
        Scripted::json(200, format!("{{\"broken\": \"{SENTINEL}\"")),
        Scripted::json(200, echo.clone()),
        Scripted::sse(200, format!("data: {{}}\n\nevent: error\ndata: {echo}\n\n")),
        Scripted::sse(
            200,
            format!("event: error\ndata: key {SENTINEL} rejected\n\n"),
        ),
        Scripted::sse(200, format!("data: {SENTINEL}{}\n\n", "z".repeat(5000))),
    ])
    .await;
    let executor = executor();
    let bearer = || post(&server);
    let header = || {
        HttpRequest::post(format!("{}/v1", server.url()), json!({})).auth(Auth::Header {
            name: "x-goog-api-key".into(),
            value: Secret::new(SENTINEL),
        })
    };

    let mut errors = Vec::new();
    for request in [bearer(), header(), bearer(), header(), bearer()] {
        errors.push(executor.send_json("p", request).await.unwrap_err());
    }
    for request in [bearer(), header(), bearer()] {
        let stream = executor
            .send_stream("p", request, Framing::Sse)
            .await
            .unwrap();
        errors.push(collect(stream).await.1.expect("an in-band error"));
    }
    assert_eq!(errors[0].kind(), ErrorKind::Auth);
    assert!(
        errors[0]
            .message()
            .contains("Incorrect API key provided: ***"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].kind(), ErrorKind::Unavailable);
    assert!(errors[1].raw_body().unwrap().contains("Bearer ***"));
    assert_eq!(errors[3].kind(), ErrorKind::Decode);
    assert_eq!(errors[7].kind(), ErrorKind::Decode);
    for err in &errors {
        assert_no_leak(err);
    }
    // The key did go out, where it belongs.
    assert!(server.requests().iter().all(|r| r.header("authorization")
        == Some(&format!("Bearer {SENTINEL}"))
        || r.header("x-goog-api-key") == Some(SENTINEL)));

    let request = HttpRequest::post(
        format!("{}/v1?key={SENTINEL}", server.url()),
        json!({"note": SENTINEL}),
    )
    .auth(Auth::Bearer(Secret::new(SENTINEL)))
    .header("x-api-key", SENTINEL)
    .header("x-trace", "plain");
    for text in [
        format!("{request:?}"),
        format!("{:?}", header()),
        format!("{executor:?}"),
        format!("{:?}", executor.config()),
        format!("{server:?}"),
    ] {
        assert!(!text.contains("sk-sentinel"), "secret leaked: {text}");
    }
    assert!(format!("{request:?}").contains("plain"));
}
