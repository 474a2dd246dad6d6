//! The circuit breaker over real calls: it opens after repeated 5xx, fails fast without
//! touching the server, and closes after a successful probe (or reopens after a failed one).

use std::sync::Arc;
use std::time::Duration;

use exllm_core::{ErrorKind, Outcome};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use exllm_infrastructure::{
    BreakerConfig, BreakerState, CircuitBreaker, Retry, RetryConfig, UsageRecorder,
};

use super::{VecLedger, client, completion, drain, err_outcome, error_body, openai_at, sse_frames};

const ADDRESS: &str = "openai/gpt-4o-mini";

fn breaker() -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig {
        failure_threshold: 2,
        cool_down: Duration::from_secs(30),
        ..BreakerConfig::default()
    })
}

fn one_retry() -> Retry {
    Retry::new(RetryConfig {
        max_retries: 1,
        ..RetryConfig::default()
    })
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_repeated_5xx_fails_fast_and_closes_after_a_probe() {
    let failing = || Scripted::json(503, error_body("server_error", "unavailable"));
    let server = FixtureServer::start(vec![
        failing(),
        failing(),
        failing(),
        failing(),
        Scripted::json(200, completion("recovered")),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let breaker = breaker();
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![
            Arc::new(breaker.clone()),
            Arc::new(one_retry()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );

    // Two calls, two attempts each, all 503: two counted failures open the circuit.
    for _ in 0..2 {
        let err = exllm.chat(ADDRESS, "Hi").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
    assert_eq!(server.request_count(), 4);
    assert!(matches!(breaker.state("openai"), BreakerState::Open { .. }));

    // Open: fail fast, the server untouched, nothing recorded.
    let err = exllm.chat(ADDRESS, "Hi").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(err.provider(), Some("openai"));
    let wait = err.retry_after().expect("time until half-open");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    let (events, err) = drain(exllm.stream(ADDRESS, "Hi").await).await;
    assert!(events.is_empty());
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::CircuitOpen));
    assert_eq!(server.request_count(), 4);
    assert_eq!(ledger.records().len(), 4);

    // After the cool-down the next call is a probe; its success closes the circuit.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(breaker.state("openai"), BreakerState::HalfOpen);
    let reply = exllm.chat(ADDRESS, "Hi").await.expect("the probe succeeds");
    assert_eq!(reply.text(), "recovered");
    assert_eq!(breaker.state("openai"), BreakerState::Closed);
    assert_eq!(server.request_count(), 5);
    assert_eq!(
        breaker.snapshot().into_iter().collect::<Vec<_>>(),
        vec![("openai".to_owned(), BreakerState::Closed)]
    );
    assert_eq!(
        ledger
            .summary()
            .into_iter()
            .map(|(_, a, o)| (a, o))
            .collect::<Vec<_>>(),
        vec![
            (1, err_outcome(ErrorKind::Unavailable)),
            (2, err_outcome(ErrorKind::Unavailable)),
            (1, err_outcome(ErrorKind::Unavailable)),
            (2, err_outcome(ErrorKind::Unavailable)),
            (1, Outcome::Ok),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit() {
    let server = FixtureServer::start(vec![Scripted::json(
        500,
        error_body("server_error", "server_error"),
    )])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let breaker = breaker();
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![
            Arc::new(breaker.clone()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    for _ in 0..2 {
        assert!(exllm.chat(ADDRESS, "Hi").await.is_err());
    }
    assert_eq!(server.request_count(), 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    let err = exllm.chat(ADDRESS, "Hi").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "the probe's own error");
    assert_eq!(server.request_count(), 3);
    assert!(matches!(breaker.state("openai"), BreakerState::Open { .. }));
    let err = exllm.chat(ADDRESS, "Hi").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(server.request_count(), 3);
    assert_eq!(ledger.records().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn rate_limits_and_bad_requests_do_not_open_the_circuit() {
    let server = FixtureServer::start(vec![
        Scripted::json(429, error_body("requests", "rate_limit_exceeded")),
        Scripted::json(400, error_body("invalid_request_error", "bad")),
        Scripted::json(429, error_body("requests", "rate_limit_exceeded")),
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(sse_frames(&["ok"])),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let breaker = breaker();
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![
            Arc::new(breaker.clone()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    for _ in 0..3 {
        let err = exllm.chat(ADDRESS, "Hi").await.unwrap_err();
        assert_ne!(err.kind(), ErrorKind::CircuitOpen);
    }
    assert_eq!(breaker.state("openai"), BreakerState::Closed);
    let (events, err) = drain(exllm.stream(ADDRESS, "Hi").await).await;
    assert!(err.is_none(), "{err:?}");
    assert!(!events.is_empty());
    assert_eq!(server.request_count(), 4);
    assert_eq!(ledger.records().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn only_one_probe_goes_out_while_half_open() {
    let server = FixtureServer::start(vec![
        Scripted::json(503, error_body("server_error", "unavailable")),
        Scripted::json(503, error_body("server_error", "unavailable")),
        // The probe's answer comes slowly, chunk by chunk.
        Scripted::new(200)
            .header("content-type", "application/json")
            .chunks(vec![completion("probe ok")])
            .delay(500),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let breaker = breaker();
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![
            Arc::new(breaker.clone()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    for _ in 0..2 {
        assert!(exllm.chat(ADDRESS, "Hi").await.is_err());
    }
    tokio::time::advance(Duration::from_secs(31)).await;
    let (probe, other) = tokio::join!(exllm.chat(ADDRESS, "Hi"), exllm.chat(ADDRESS, "Hi"));
    assert_eq!(probe.expect("the probe succeeds").text(), "probe ok");
    assert_eq!(
        other.expect_err("fails fast during the probe").kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(server.request_count(), 3);
    assert_eq!(breaker.state("openai"), BreakerState::Closed);
    assert_eq!(ledger.records().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn per_model_circuits_are_separate() {
    let server = FixtureServer::start(vec![
        Scripted::json(503, error_body("server_error", "unavailable")),
        Scripted::json(503, error_body("server_error", "unavailable")),
        Scripted::json(200, completion("other model")),
    ])
    .await;
    let breaker = CircuitBreaker::new(BreakerConfig {
        failure_threshold: 2,
        per_model: true,
        ..BreakerConfig::default()
    });
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![Arc::new(breaker.clone())],
    );
    for _ in 0..2 {
        assert!(exllm.chat("openai/gpt-4o", "Hi").await.is_err());
    }
    assert!(matches!(
        breaker.state("openai/gpt-4o"),
        BreakerState::Open { .. }
    ));
    assert_eq!(breaker.state("openai/gpt-4o-mini"), BreakerState::Closed);
    let reply = exllm.chat("openai/gpt-4o-mini", "Hi").await.unwrap();
    assert_eq!(reply.text(), "other model");
    assert_eq!(server.request_count(), 3);
}
