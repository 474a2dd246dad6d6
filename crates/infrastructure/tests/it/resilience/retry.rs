//! Retry and timeout on plain calls: what is retried, how long it waits, what is given up,
//! and that the ledger sees every attempt once.

use std::sync::Arc;
use std::time::Duration;

use exllm_core::{ErrorKind, Outcome};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use exllm_infrastructure::{Retry, RetryConfig, Timeout, TimeoutConfig, UsageRecorder};
use tokio::time::Instant;

use super::{VecLedger, client, completion, err_outcome, error_body, openai_at};
use crate::fixture_text;

const ADDRESS: &str = "openai/gpt-4o-mini";

/// A client with `Retry` (default config) and the recorder, against `server`.
fn retrying(server: &FixtureServer, ledger: &Arc<VecLedger>) -> exllm_core::ExLLM {
    client(
        vec![openai_at("openai", server)],
        vec![
            Arc::new(Retry::default()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    )
}

fn attempts(ledger: &VecLedger) -> Vec<(u32, Outcome)> {
    ledger
        .summary()
        .into_iter()
        .map(|(_, attempt, outcome)| (attempt, outcome))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_waits_that_long_then_succeeds() {
    let server = FixtureServer::start(vec![
        Scripted::json(
            429,
            fixture_text("openai/error-429-rate-limit-exceeded-tpm.json"),
        )
        .header("retry-after", "3"),
        Scripted::json(200, completion("hello")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let started = Instant::now();
    let reply = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .expect("the retry succeeds");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "slept {:?}, less than the retry-after",
        started.elapsed()
    );
    assert_eq!(reply.text(), "hello");
    assert_eq!(reply.attempts, 2);
    assert_eq!(server.request_count(), 2);
    assert_eq!(
        attempts(&ledger),
        vec![(1, err_outcome(ErrorKind::RateLimited)), (2, Outcome::Ok)]
    );
    let ok = &ledger.records()[1];
    assert_eq!(ok.usage.input_tokens, 7);
    assert_eq!(ok.usage.output_tokens, 3);
    assert!(ok.cost.is_some(), "the facade prices before the recorder");
    assert!(!ok.stream);
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_wins_over_retry_after() {
    let server = FixtureServer::start(vec![
        Scripted::json(429, error_body("tokens", "rate_limit_exceeded"))
            .header("retry-after-ms", "1500")
            .header("retry-after", "30"),
        Scripted::json(200, completion("ok")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let started = Instant::now();
    let reply = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap();
    let slept = started.elapsed();
    assert!(slept >= Duration::from_millis(1500), "{slept:?}");
    assert!(slept < Duration::from_secs(30), "{slept:?}");
    assert_eq!(reply.attempts, 2);
    assert_eq!(ledger.records().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn two_server_errors_then_success_takes_three_attempts() {
    let server = FixtureServer::start(vec![
        Scripted::json(500, fixture_text("openai/error-500-server-error.json")),
        Scripted::json(500, fixture_text("openai/error-500-server-error.json")),
        Scripted::json(200, completion("third time")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let reply = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap();
    assert_eq!(reply.text(), "third time");
    assert_eq!(reply.attempts, 3);
    assert_eq!(server.request_count(), 3);
    assert_eq!(
        attempts(&ledger),
        vec![
            (1, err_outcome(ErrorKind::Unavailable)),
            (2, err_outcome(ErrorKind::Unavailable)),
            (3, Outcome::Ok)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn three_server_errors_give_up_with_the_typed_error_after_two_retries() {
    let server = FixtureServer::start(vec![Scripted::json(
        500,
        fixture_text("openai/error-500-server-error.json"),
    )])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let err = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.provider(), Some("openai"));
    assert_eq!(server.request_count(), 3);
    assert_eq!(
        attempts(&ledger)
            .into_iter()
            .map(|(a, _)| a)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_529_is_retried() {
    let server = FixtureServer::start(vec![
        Scripted::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .header("x-should-retry", "true"),
        Scripted::json(200, completion("fine now")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let reply = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap();
    assert_eq!(reply.attempts, 2);
    assert_eq!(server.request_count(), 2);
    assert_eq!(
        attempts(&ledger),
        vec![(1, err_outcome(ErrorKind::Unavailable)), (2, Outcome::Ok)]
    );
}

#[tokio::test(start_paused = true)]
async fn x_should_retry_false_stops_a_retry() {
    let server = FixtureServer::start(vec![
        Scripted::json(503, error_body("server_error", "unavailable"))
            .header("x-should-retry", "false"),
        Scripted::json(200, completion("never")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let err = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(server.request_count(), 1);
    assert_eq!(ledger.records().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_quota_is_not_retried() {
    let server = FixtureServer::start(vec![
        Scripted::json(
            429,
            fixture_text("openai/error-429-insufficient-quota.json"),
        ),
        Scripted::json(200, completion("never")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let err = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExhausted);
    assert!(!err.is_retryable());
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        attempts(&ledger),
        vec![(1, err_outcome(ErrorKind::QuotaExhausted))]
    );
}

#[tokio::test(start_paused = true)]
async fn auth_and_invalid_requests_are_not_retried() {
    for (status, body, kind) in [
        (
            401,
            fixture_text("openai/error-401-invalid-api-key.json"),
            ErrorKind::Auth,
        ),
        (
            400,
            fixture_text("openai/error-400-unsupported-parameter.json"),
            ErrorKind::InvalidRequest,
        ),
        (
            400,
            error_body("invalid_request_error", "context_length_exceeded"),
            ErrorKind::ContextLengthExceeded,
        ),
    ] {
        let server = FixtureServer::start(vec![Scripted::json(status, body)]).await;
        let ledger = Arc::new(VecLedger::default());
        let err = retrying(&server, &ledger)
            .chat(ADDRESS, "Hi")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err:?}");
        assert_eq!(server.request_count(), 1, "{kind:?} must not be retried");
        assert_eq!(attempts(&ledger), vec![(1, err_outcome(kind))]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_reset_is_retried_then_given_up_as_a_transport_error() {
    // The server resets the connection right after the response head: no response arrives.
    let server = FixtureServer::start(vec![Scripted::new(200).reset()]).await;
    let ledger = Arc::new(VecLedger::default());
    let err = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");
    assert_eq!(server.request_count(), 3);
    assert_eq!(
        attempts(&ledger),
        vec![
            (1, err_outcome(ErrorKind::Transport)),
            (2, err_outcome(ErrorKind::Transport)),
            (3, err_outcome(ErrorKind::Transport)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_html_502_is_unavailable_and_retried() {
    let server = FixtureServer::start(vec![
        Scripted::new(502)
            .header("content-type", "text/html")
            .body("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"),
        Scripted::json(200, completion("back")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let reply = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap();
    assert_eq!(reply.attempts, 2);
    assert_eq!(server.request_count(), 2);
    assert_eq!(
        attempts(&ledger),
        vec![(1, err_outcome(ErrorKind::Unavailable)), (2, Outcome::Ok)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_200_with_an_error_body_is_a_typed_error() {
    let server = FixtureServer::start(vec![
        Scripted::json(200, error_body("invalid_request_error", "bad_thing")),
        Scripted::json(200, completion("never")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let err = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err:?}");
    assert_eq!(err.code(), Some("bad_thing"));
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        attempts(&ledger),
        vec![(1, err_outcome(ErrorKind::InvalidRequest))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_over_the_cap_gives_up_at_once() {
    let server = FixtureServer::start(vec![
        Scripted::json(429, error_body("requests", "rate_limit_exceeded"))
            .header("retry-after", "120"),
        Scripted::json(200, completion("never")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let started = Instant::now();
    let err = retrying(&server, &ledger)
        .chat(ADDRESS, "Hi")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "must not sleep, slept {:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        attempts(&ledger),
        vec![(1, err_outcome(ErrorKind::RateLimited))]
    );
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_caps_retries_across_calls() {
    let server = FixtureServer::start(vec![Scripted::json(
        500,
        error_body("server_error", "server_error"),
    )])
    .await;
    let ledger = Arc::new(VecLedger::default());
    // One retry in the bucket and 1 % earned per call: the first call retries once, the
    // second not at all.
    let retry = Retry::new(RetryConfig {
        budget: Some(exllm_infrastructure::RetryBudget {
            ratio: 0.01,
            burst: 1,
        }),
        ..RetryConfig::default()
    });
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![
            Arc::new(retry.clone()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    assert!(exllm.chat(ADDRESS, "Hi").await.is_err());
    assert_eq!(server.request_count(), 2);
    assert!(exllm.chat(ADDRESS, "Hi").await.is_err());
    assert_eq!(server.request_count(), 3, "the budget is used up");
    assert_eq!(
        attempts(&ledger)
            .into_iter()
            .map(|(a, _)| a)
            .collect::<Vec<_>>(),
        vec![1, 2, 1]
    );
}

#[tokio::test(start_paused = true)]
async fn a_total_timeout_ends_a_call_that_never_answers() {
    // A head, then silence: the executor's idle timeout (5 s) is not what ends it.
    let server = FixtureServer::start(vec![
        Scripted::stall_after(Vec::<Vec<u8>>::new()).header("content-type", "application/json"),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![
            Arc::new(Timeout::new(TimeoutConfig {
                total: Some(Duration::from_secs(2)),
                idle: None,
            })),
            Arc::new(Retry::default()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    let started = Instant::now();
    let err = exllm.chat(ADDRESS, "Hi").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.provider(), Some("openai"));
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.request_count(), 1);
    let records = ledger.wait_for(1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, err_outcome(ErrorKind::Cancelled));
}

/// A telemetry hook sees every attempt the ledger sees, with usage and latency.
#[tokio::test(start_paused = true)]
async fn a_usage_hook_sees_every_attempt() {
    use exllm_infrastructure::testing::{FixtureServer, Scripted};
    use exllm_infrastructure::{Retry, UsageRecorder};
    use std::sync::{Arc, Mutex};

    let server = FixtureServer::start(vec![
        Scripted::json(500, super::error_body("server_error", "server_error")),
        Scripted::json(200, super::completion("fine")),
    ])
    .await;
    let ledger = Arc::new(super::VecLedger::default());
    let seen: Arc<Mutex<Vec<(u32, u64)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let recorder = UsageRecorder::new(ledger.clone()).with_hook(Arc::new(move |r| {
        sink.lock()
            .unwrap()
            .push((r.attempt, r.usage.output_tokens));
    }));
    let exllm = super::client(
        vec![super::openai_at("openai", &server)],
        vec![Arc::new(Retry::default()), Arc::new(recorder)],
    );
    exllm.chat("openai/gpt-4o-mini", "hi").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, 1);
    assert_eq!(seen[1].0, 2);
    assert_eq!(
        ledger.records().len(),
        2,
        "the ledger still gets every record"
    );
}
