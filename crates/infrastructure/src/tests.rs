//! Unit tests of the crate's private parts: line splitting, header parsing, error bodies.

use std::time::{Duration, SystemTime};

use exllm_core::{ErrorKind, Secret};
use serde_json::json;

use crate::headers::{parse_duration, retry_after};
use crate::line::LineSplitter;
use crate::provider_error::{Scrub, from_json, kind_for_status};

fn split_all(chunks: &[&[u8]]) -> Vec<String> {
    let mut splitter = LineSplitter::new("test", 1024);
    let mut lines = Vec::new();
    for chunk in chunks {
        splitter
            .feed(chunk, |l| {
                lines.push(String::from_utf8_lossy(l).into_owned());
                Ok(())
            })
            .unwrap();
    }
    splitter
        .finish(|l| {
            lines.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        })
        .unwrap();
    lines
}

#[test]
fn a_cr_ending_one_chunk_and_an_lf_starting_the_next_are_one_line_end() {
    assert_eq!(split_all(&[b"a\r", b"\nb\n"]), ["a", "b"]);
    assert_eq!(split_all(&[b"a\r", b"", b"\nb"]), ["a", "b"]);
    assert_eq!(split_all(&[b"a\r", b"\r\nb"]), ["a", "", "b"]);
    assert_eq!(split_all(&[b"a\n\rb\r\n\n"]), ["a", "", "b", ""]);
}

#[test]
fn the_splitter_is_unusable_after_an_error() {
    let mut splitter = LineSplitter::new("test", 4);
    assert!(splitter.feed(b"12345", |_| Ok(())).is_err());
    assert!(splitter.feed(b"\n", |_| Ok(())).is_err());
}

#[test]
fn go_durations_parse() {
    assert_eq!(
        parse_duration("2m59.56s"),
        Some(Duration::from_secs_f64(179.56))
    );
    assert_eq!(parse_duration("12ms"), Some(Duration::from_millis(12)));
    assert_eq!(parse_duration("22s"), Some(Duration::from_secs(22)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("0"), Some(Duration::ZERO));
    assert_eq!(parse_duration("soon"), None);
    assert_eq!(parse_duration("5x"), None);
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("1e400s"), None);
}

#[test]
fn retry_after_prefers_milliseconds_then_seconds_then_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        retry_after(&h(&[("retry-after", "9"), ("retry-after-ms", "1500")]), now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        retry_after(&h(&[("retry-after", "0.5")]), now),
        Some(Duration::from_millis(500))
    );
    let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
    assert_eq!(
        retry_after(&h(&[("retry-after", &date)]), now),
        Some(Duration::from_secs(30))
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
    assert_eq!(
        retry_after(&h(&[("retry-after", &past)]), now),
        Some(Duration::ZERO)
    );
    assert_eq!(retry_after(&h(&[("retry-after", "-1")]), now), None);
    assert_eq!(retry_after(&h(&[("retry-after", "NaN")]), now), None);
    assert_eq!(retry_after(&h(&[]), now), None);
}

#[test]
fn statuses_map_to_kinds() {
    for (status, kind) in [
        (400, ErrorKind::InvalidRequest),
        (401, ErrorKind::Auth),
        (403, ErrorKind::Auth),
        (404, ErrorKind::NotFound),
        (408, ErrorKind::Timeout),
        (409, ErrorKind::Unavailable),
        (413, ErrorKind::InvalidRequest),
        (429, ErrorKind::RateLimited),
        (500, ErrorKind::Unavailable),
        (503, ErrorKind::Unavailable),
        (529, ErrorKind::Unavailable),
        (302, ErrorKind::Provider),
    ] {
        assert_eq!(kind_for_status(status), kind, "HTTP {status}");
    }
}

#[test]
fn body_codes_decide_over_status_and_hint_without_one() {
    let quota = json!({"error": {"message": "m", "type": "insufficient_quota", "code": "insufficient_quota"}});
    let err = from_json(Some(429), &quota).unwrap();
    assert_eq!(err.kind(), ErrorKind::QuotaExhausted);
    assert!(!err.is_retryable());

    let ctx = json!({"error": {"message": "m", "type": "invalid_request_error", "code": "context_length_exceeded"}});
    assert_eq!(
        from_json(Some(400), &ctx).unwrap().kind(),
        ErrorKind::ContextLengthExceeded
    );

    let filtered = json!({"error": {"message": "m", "code": "content_policy_violation"}});
    assert_eq!(
        from_json(Some(400), &filtered).unwrap().kind(),
        ErrorKind::ContentFiltered
    );
    let filtered = json!({"error": {"message": "m", "code": "content_filter"}});
    assert_eq!(
        from_json(None, &filtered).unwrap().kind(),
        ErrorKind::ContentFiltered
    );

    let groq = json!({"error": {"message": "m", "code": "tool_use_failed", "status_code": 400}});
    let err = from_json(None, &groq).unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.raw_body(), None);

    // Groq's failed generation is kept with the error (fx: groq/error-400-tool-use-failed.response.json).
    let failed = json!({"error": {"message": "m", "code": "tool_use_failed",
        "failed_generation": "{\"name\": \"get_something_by_name\"}"}});
    let err = from_json(Some(400), &failed).unwrap();
    assert!(
        err.raw_body().is_some_and(
            |raw| raw.contains("failed_generation") && raw.contains("get_something_by_name")
        ),
        "{err:?}"
    );

    let unknown = json!({"error": {"message": "m"}});
    assert_eq!(
        from_json(None, &unknown).unwrap().kind(),
        ErrorKind::Provider
    );

    assert!(from_json(None, &json!({"error": null, "id": "x"})).is_none());
    assert!(from_json(None, &json!([1, 2])).is_none());
    assert_eq!(
        from_json(None, &json!({"error": "boom"}))
            .unwrap()
            .message(),
        "boom"
    );
}

#[test]
fn scrubbing_previews_never_leaves_half_a_secret() {
    let secret = "sk-sentinel-0123456789";
    let scrub = Scrub::new(Some(Secret::new(secret)));
    let mut body = "x".repeat(500);
    body.push_str(secret);
    let preview = scrub.preview(body.as_bytes());
    assert!(preview.len() <= 512);
    assert!(!preview.contains("sk-sen"), "{preview}");
}
