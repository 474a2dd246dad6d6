//! Streams through the resilience middleware: retried only before the first event, typed
//! errors with the partial reply after it, deadlines between events, and one ledger record
//! per attempt however the stream ends.

use std::sync::Arc;
use std::time::Duration;

use exllm_core::{ErrorKind, Outcome, StreamEvent};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use exllm_infrastructure::{Retry, Timeout, TimeoutConfig, UsageRecorder};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::{VecLedger, client, done, drain, err_outcome, error_body, openai_at, sse_frames};

const ADDRESS: &str = "openai/gpt-4o-mini";

fn streaming(
    server: &FixtureServer,
    ledger: &Arc<VecLedger>,
    idle: Option<Duration>,
) -> exllm_core::ExLLM {
    client(
        vec![openai_at("openai", server)],
        vec![
            Arc::new(Timeout::new(TimeoutConfig {
                total: Some(Duration::from_secs(120)),
                idle,
            })),
            Arc::new(Retry::default()),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    )
}

fn text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_fails_before_its_first_event_is_retried() {
    let server = FixtureServer::start(vec![
        Scripted::json(500, error_body("server_error", "server_error")),
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(sse_frames(&["Hello", " there"])),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let (events, err) = drain(
        streaming(&server, &ledger, None)
            .stream(ADDRESS, "Hi")
            .await,
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text(&events), "Hello there");
    let response = done(&events);
    assert_eq!(response.attempts, 2);
    assert_eq!(response.usage.input_tokens, 5);
    assert_eq!(server.request_count(), 2);
    let records = ledger.records();
    assert_eq!(
        ledger.summary(),
        vec![
            ("openai".into(), 1, err_outcome(ErrorKind::Unavailable)),
            ("openai".into(), 2, Outcome::Ok)
        ]
    );
    assert!(records.iter().all(|r| r.stream));
    assert_eq!(records[1].usage.output_tokens, 2);
    assert!(records[1].cost.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_reset_mid_stream_is_a_typed_error_with_the_partial_reply_and_no_retry() {
    let frames = sse_frames(&["Partial", " reply", " lost"]);
    let server = FixtureServer::start(vec![
        Scripted::reset_after(frames[..3].to_vec()),
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(sse_frames(&["never"])),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let (events, err) = drain(
        streaming(&server, &ledger, None)
            .stream(ADDRESS, "Hi")
            .await,
    )
    .await;
    let err = err.expect("the stream must end in an error");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");
    assert_eq!(err.provider(), Some("openai"));
    assert_eq!(text(&events), "Partial reply");
    let partial = err.partial_response().expect("the partial reply is kept");
    assert_eq!(partial.text(), "Partial reply");
    assert_eq!(server.request_count(), 1, "no retry after the first event");
    assert_eq!(
        ledger.summary(),
        vec![("openai".into(), 1, err_outcome(ErrorKind::Transport))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stall_mid_stream_ends_in_the_idle_timeout() {
    let frames = sse_frames(&["Slow"]);
    let server = FixtureServer::start(vec![Scripted::stall_after(frames[..2].to_vec())]).await;
    let ledger = Arc::new(VecLedger::default());
    let started = Instant::now();
    let (events, err) = drain(
        streaming(&server, &ledger, Some(Duration::from_secs(1)))
            .stream(ADDRESS, "Hi")
            .await,
    )
    .await;
    let err = err.expect("the stall must end the stream");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(err.message().contains("idle"), "{err}");
    assert_eq!(text(&events), "Slow");
    // The middleware's 1 s idle deadline fires, not the executor's 5 s one.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.request_count(), 1);
    // The deadline dropped the attempt under way: it is recorded as cancelled.
    let records = ledger.wait_for(1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, err_outcome(ErrorKind::Cancelled));
    assert!(records[0].stream);
}

#[tokio::test(start_paused = true)]
async fn the_executors_idle_timeout_is_a_recorded_timeout() {
    let frames = sse_frames(&["Slow"]);
    let server = FixtureServer::start(vec![Scripted::stall_after(frames[..2].to_vec())]).await;
    let ledger = Arc::new(VecLedger::default());
    let (_, err) = drain(
        streaming(&server, &ledger, None)
            .stream(ADDRESS, "Hi")
            .await,
    )
    .await;
    let err = err.expect("the stall must end the stream");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        ledger.summary(),
        vec![("openai".into(), 1, err_outcome(ErrorKind::Timeout))]
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_sse_is_a_decode_error_and_not_retried() {
    let server = FixtureServer::start(vec![
        Scripted::sse(200, "data: {\"id\": \"chatcmpl-x\", \"choices\": [\n\n"),
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(sse_frames(&["never"])),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let (events, err) = drain(
        streaming(&server, &ledger, None)
            .stream(ADDRESS, "Hi")
            .await,
    )
    .await;
    let err = err.expect("malformed SSE must fail");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    assert!(events.is_empty());
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        ledger.summary(),
        vec![("openai".into(), 1, err_outcome(ErrorKind::Decode))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_early_is_recorded_as_cancelled_once() {
    let server = FixtureServer::start(vec![
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(sse_frames(&["one", " two", " three"]))
            .delay(10),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let mut stream = streaming(&server, &ledger, None)
        .stream(ADDRESS, "Hi")
        .await
        .unwrap();
    let first = stream
        .next()
        .await
        .expect("an event")
        .expect("not an error");
    assert!(matches!(first, StreamEvent::TextDelta(_)), "{first:?}");
    drop(stream);
    let records = ledger.wait_for(1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, err_outcome(ErrorKind::Cancelled));
    assert_eq!(records[0].attempt, 1);
    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ledger.records().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_total_deadline_bounds_a_whole_stream() {
    let server = FixtureServer::start(vec![
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(sse_frames(&["a", "b", "c", "d", "e", "f"]))
            .delay(1000),
    ])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let exllm = client(
        vec![openai_at("openai", &server)],
        vec![
            Arc::new(Timeout::new(TimeoutConfig {
                total: Some(Duration::from_millis(3500)),
                idle: Some(Duration::from_millis(2500)),
            })),
            Arc::new(UsageRecorder::new(ledger.clone())),
        ],
    );
    let (events, err) = drain(exllm.stream(ADDRESS, "Hi").await).await;
    let err = err.expect("the total deadline must end the stream");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("total"), "{err}");
    assert!(!events.is_empty() && events.len() < 6, "{events:?}");
    assert_eq!(ledger.wait_for(1).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_failing_after_its_usage_records_the_partial_usage() {
    // Everything but `[DONE]`: the usage chunk arrived, then the connection broke.
    let frames = sse_frames(&["Almost"]);
    let server = FixtureServer::start(vec![Scripted::reset_after(
        frames[..frames.len() - 1].to_vec(),
    )])
    .await;
    let ledger = Arc::new(VecLedger::default());
    let (events, err) = drain(
        streaming(&server, &ledger, None)
            .stream(ADDRESS, "Hi")
            .await,
    )
    .await;
    let err = err.expect("the stream must end in an error");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");
    assert_eq!(text(&events), "Almost");
    let records = ledger.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, err_outcome(ErrorKind::Transport));
    assert_eq!(records[0].usage.input_tokens, 5);
    assert_eq!(records[0].usage.output_tokens, 2);
    assert_eq!(server.request_count(), 1);
}
