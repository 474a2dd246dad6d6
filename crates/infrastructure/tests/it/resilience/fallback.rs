//! Fallback from a failing provider to a healthy one, for plain calls and streams, through
//! the breaker, retry and recorder.

use std::sync::Arc;
use std::time::Duration;

use exllm_core::{ErrorKind, Outcome};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use exllm_infrastructure::{
    BreakerConfig, CircuitBreaker, Fallback, FallbackTarget, Retry, UsageRecorder,
};

use super::{
    VecLedger, client, completion, done, drain, err_outcome, error_body, openai_at, sse_frames,
};

const ADDRESS: &str = "openai/gpt-4o-mini";

struct Setup {
    a: FixtureServer,
    b: FixtureServer,
    ledger: Arc<VecLedger>,
    exllm: exllm_core::ExLLM,
}

async fn setup(b_script: Vec<Scripted>) -> Setup {
    let a = FixtureServer::start(vec![Scripted::json(
        503,
        error_body("server_error", "unavailable"),
    )])
    .await;
    let b = FixtureServer::start(b_script).await;
    let ledger = Arc::new(VecLedger::default());
    let primary = openai_at("openai", &a);
    let backup = openai_at("backup", &b);
    let exllm = client(
        vec![primary],
        vec![
            Arc::new(Fallback::to(vec![FallbackTarget::new(
                backup,
                "gpt-4o-mini",
            )])),
            Arc::new(CircuitBreaker::new(BreakerConfig {
                failure_threshold: 1,
                cool_down: Duration::from_secs(60),
                ..BreakerConfig::default()
            })),
            Arc::new(Retry::default()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    Setup {
        a,
        b,
        ledger,
        exllm,
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_falls_back_to_a_healthy_one() {
    let s = setup(vec![Scripted::json(200, completion("from b"))]).await;
    let reply = s
        .exllm
        .chat(ADDRESS, "Hi")
        .await
        .expect("the fallback answers");
    assert_eq!(reply.text(), "from b");
    assert_eq!(reply.provider, "backup");
    assert_eq!(reply.attempts, 1);
    assert_eq!(
        reply.metadata.get("fallback_from"),
        Some(&serde_json::json!("openai"))
    );
    assert_eq!(s.a.request_count(), 3, "the primary was retried first");
    assert_eq!(s.b.request_count(), 1);
    assert_eq!(
        s.ledger.summary(),
        vec![
            ("openai".into(), 1, err_outcome(ErrorKind::Unavailable)),
            ("openai".into(), 2, err_outcome(ErrorKind::Unavailable)),
            ("openai".into(), 3, err_outcome(ErrorKind::Unavailable)),
            ("backup".into(), 1, Outcome::Ok),
        ]
    );

    // The primary's circuit is now open: the next call goes straight to the backup.
    let reply = s.exllm.chat(ADDRESS, "Hi").await.unwrap();
    assert_eq!(reply.provider, "backup");
    assert_eq!(s.a.request_count(), 3, "an open circuit is not touched");
    assert_eq!(s.b.request_count(), 2);
    assert_eq!(s.ledger.records().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failing_stream_falls_back_before_its_first_event() {
    let s = setup(vec![
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(sse_frames(&["backup", " speaking"])),
    ])
    .await;
    let (events, err) = drain(s.exllm.stream(ADDRESS, "Hi").await).await;
    assert!(err.is_none(), "{err:?}");
    let response = done(&events);
    assert_eq!(response.provider, "backup");
    assert_eq!(response.text(), "backup speaking");
    assert_eq!(s.a.request_count(), 3);
    assert_eq!(s.b.request_count(), 1);
    let records = s.ledger.records();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.stream));
    assert_eq!(records[3].provider, "backup");
    assert_eq!(records[3].outcome, Outcome::Ok);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_that_fails_too_gives_the_last_typed_error() {
    let s = setup(vec![Scripted::json(
        500,
        error_body("server_error", "server_error"),
    )])
    .await;
    let err = s.exllm.chat(ADDRESS, "Hi").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.provider(), Some("backup"));
    assert_eq!(s.a.request_count(), 3);
    assert_eq!(s.b.request_count(), 3);
    assert_eq!(s.ledger.records().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_error_does_not_fall_back() {
    let a = FixtureServer::start(vec![Scripted::json(
        401,
        error_body("invalid_request_error", "invalid_api_key"),
    )])
    .await;
    let b = FixtureServer::start(vec![Scripted::json(200, completion("never"))]).await;
    let exllm = client(
        vec![openai_at("openai", &a)],
        vec![Arc::new(Fallback::to(vec![FallbackTarget::new(
            openai_at("backup", &b),
            "gpt-4o-mini",
        )]))],
    );
    let err = exllm.chat(ADDRESS, "Hi").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(a.request_count(), 1);
    assert_eq!(b.request_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stream_never_falls_back_after_its_first_event() {
    let frames = sse_frames(&["half", " a"]);
    let a = FixtureServer::start(vec![Scripted::reset_after(frames[..2].to_vec())]).await;
    let b = FixtureServer::start(vec![Scripted::json(200, completion("never"))]).await;
    let ledger = Arc::new(VecLedger::default());
    let exllm = client(
        vec![openai_at("openai", &a)],
        vec![
            Arc::new(Fallback::to(vec![FallbackTarget::new(
                openai_at("backup", &b),
                "gpt-4o-mini",
            )])),
            Arc::new(Retry::default()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    let (events, err) = drain(exllm.stream(ADDRESS, "Hi").await).await;
    let err = err.expect("the break ends the stream");
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(
        err.partial_response().map(|p| p.text()),
        Some("half".to_owned())
    );
    assert!(!events.is_empty());
    assert_eq!(a.request_count(), 1);
    assert_eq!(b.request_count(), 0);
    assert_eq!(
        ledger.summary(),
        vec![("openai".into(), 1, err_outcome(ErrorKind::Transport))]
    );
}
