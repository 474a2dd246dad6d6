//! The SSE and NDJSON decoders: any chunking gives the same frames, line ends of every kind,
//! UTF-8 split mid-character, linear work on long lines, and typed errors for bad input.

use exllm_core::ErrorKind;
use exllm_infrastructure::{DEFAULT_MAX_LINE_BYTES, NdjsonDecoder, SseDecoder, SseEvent};
use proptest::prelude::*;

use crate::fixture;

const SSE_FIXTURES: [&str; 3] = [
    "openai/stream-text-gpt4o.sse",
    "gemini/stream-sse-text.response.sse",
    "anthropic/stream-thinking-text.response.sse",
];
const NDJSON_FIXTURE: &str = "ollama/rust-genai/stream-chat-local-cached-usage.ndjson";

fn sse(chunks: &[&[u8]]) -> exllm_core::Result<Vec<SseEvent>> {
    let mut decoder = SseDecoder::new(DEFAULT_MAX_LINE_BYTES);
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(decoder.feed(chunk)?);
    }
    events.extend(decoder.finish()?);
    Ok(events)
}

fn ndjson(chunks: &[&[u8]]) -> exllm_core::Result<Vec<String>> {
    let mut decoder = NdjsonDecoder::new(DEFAULT_MAX_LINE_BYTES);
    let mut lines = Vec::new();
    for chunk in chunks {
        lines.extend(decoder.feed(chunk)?);
    }
    lines.extend(decoder.finish()?);
    Ok(lines)
}

/// `bytes` cut at `points` (any order, duplicates give empty chunks).
fn split_at<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(&bytes[start..point]);
        start = point;
    }
    chunks.push(&bytes[start..]);
    chunks
}

fn data(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

#[test]
fn recorded_sse_streams_decode_to_their_events() {
    let openai = sse(&[&fixture(SSE_FIXTURES[0])]).unwrap();
    assert_eq!(openai.len(), 34);
    assert_eq!(openai.last().unwrap().data, "[DONE]");
    assert!(
        openai
            .iter()
            .all(|e| e.event.is_none() && e.data.starts_with(['{', '[']))
    );

    // Gemini frames end in CRLF CRLF; no CR may survive into the data.
    let gemini = sse(&[&fixture(SSE_FIXTURES[1])]).unwrap();
    assert_eq!(gemini.len(), 3);
    assert!(
        gemini
            .iter()
            .all(|e| !e.data.contains('\r') && e.data.ends_with('}'))
    );

    let anthropic = sse(&[&fixture(SSE_FIXTURES[2])]).unwrap();
    assert_eq!(
        anthropic.first().unwrap().event.as_deref(),
        Some("message_start")
    );
    assert_eq!(
        anthropic.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    for event in &anthropic {
        let json: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(json["type"].as_str(), event.event.as_deref());
    }
}

#[test]
fn every_two_chunk_split_of_recorded_sse_gives_the_same_events() {
    for path in SSE_FIXTURES {
        let bytes = fixture(path);
        let whole = sse(&[&bytes]).unwrap();
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(sse(&[a, b]).unwrap(), whole, "{path} split at {cut}");
        }
    }
}

#[test]
fn every_two_chunk_split_of_recorded_ndjson_gives_the_same_lines() {
    let bytes = fixture(NDJSON_FIXTURE);
    let whole = ndjson(&[&bytes]).unwrap();
    assert_eq!(whole.len(), 3);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(ndjson(&[a, b]).unwrap(), whole, "split at {cut}");
    }
}

proptest! {
    #[test]
    fn any_chunking_of_recorded_sse_gives_the_same_events(
        which in 0..SSE_FIXTURES.len(),
        points in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = fixture(SSE_FIXTURES[which]);
        let whole = sse(&[&bytes]).unwrap();
        prop_assert_eq!(sse(&split_at(&bytes, &points)).unwrap(), whole);
    }

    #[test]
    fn any_chunking_of_recorded_ndjson_gives_the_same_lines(
        points in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = fixture(NDJSON_FIXTURE);
        let whole = ndjson(&[&bytes]).unwrap();
        prop_assert_eq!(ndjson(&split_at(&bytes, &points)).unwrap(), whole);
    }

    #[test]
    fn line_ends_of_any_kind_give_the_same_events(
        ends in proptest::collection::vec(0..3_usize, 12),
        points in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let lines = [
            "event: a", "data: 1", "", ": comment", "data: 2", "data:  3", "",
            "id: 7", "data: é😀", "", "data", "",
        ];
        let mut text = String::new();
        for (line, end) in lines.iter().zip(&ends) {
            // An LF right after a CR would join it into one CRLF line end, so a blank line
            // after a CR-ended line is ended by CR or CRLF instead.
            let end = if line.is_empty() && text.ends_with('\r') && *end == 0 { 2 } else { *end };
            text.push_str(line);
            text.push_str(["\n", "\r", "\r\n"][end]);
        }
        let events = sse(&split_at(text.as_bytes(), &points)).unwrap();
        prop_assert_eq!(events, vec![
            SseEvent { event: Some("a".into()), data: "1".into(), id: None },
            SseEvent { event: None, data: "2\n 3".into(), id: None },
            SseEvent { event: None, data: "é😀".into(), id: Some("7".into()) },
            SseEvent { event: None, data: String::new(), id: None },
        ]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        points in proptest::collection::vec(any::<usize>(), 0..8),
        cap in 1..64_usize,
    ) {
        let chunks = split_at(&bytes, &points);
        let mut s = SseDecoder::new(cap);
        let mut n = NdjsonDecoder::new(cap);
        for chunk in &chunks {
            let _ = s.feed(chunk);
            let _ = n.feed(chunk);
        }
        let _ = s.finish();
        let _ = n.finish();
    }
}

#[test]
fn utf8_split_inside_any_character_decodes() {
    let text = "data: héllo 😀 世界 🇺🇦\n\ndata: ß\n\n";
    let bytes = text.as_bytes();
    let whole = sse(&[bytes]).unwrap();
    assert_eq!(data(&whole), ["héllo 😀 世界 🇺🇦", "ß"]);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(sse(&[a, b]).unwrap(), whole, "split at {cut}");
    }
    let one_byte_chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(sse(&one_byte_chunks).unwrap(), whole);

    let line = "{\"t\":\"😀世\"}\n".as_bytes();
    for cut in 0..=line.len() {
        let (a, b) = line.split_at(cut);
        assert_eq!(ndjson(&[a, b]).unwrap(), ["{\"t\":\"😀世\"}"]);
    }
}

#[test]
fn invalid_utf8_is_a_decode_error() {
    let err = sse(&[b"data: \xff\xfe\n\n"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("UTF-8"), "{err}");
    let err = ndjson(&[b"{\"a\":\"\xc3\"}\n"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
}

#[test]
fn cr_lf_and_crlf_all_end_lines() {
    for end in ["\n", "\r", "\r\n"] {
        let text = format!("event: e{end}data: x{end}data: y{end}{end}");
        let events = sse(&[text.as_bytes()]).unwrap();
        assert_eq!(events.len(), 1, "{end:?}");
        assert_eq!(events[0].data, "x\ny");
        assert_eq!(events[0].event.as_deref(), Some("e"));
        let lines = ndjson(&[format!("{{}}{end}{{\"a\":1}}{end}").as_bytes()]).unwrap();
        assert_eq!(lines, ["{}", "{\"a\":1}"], "{end:?}");
    }
}

#[test]
fn sse_fields_follow_the_event_stream_rules() {
    let events = sse(&[b"\xef\xbb\xbfdata:no-space\n\n: just a comment\n\ndata:  two spaces\nretry: 5\nunknown: x\n\nevent: only-event\n\n"]).unwrap();
    assert_eq!(
        events,
        [
            SseEvent {
                data: "no-space".into(),
                ..SseEvent::default()
            },
            SseEvent {
                data: " two spaces".into(),
                ..SseEvent::default()
            },
            SseEvent {
                event: Some("only-event".into()),
                ..SseEvent::default()
            },
        ]
    );
}

#[test]
fn a_pending_event_and_a_last_line_without_end_are_emitted_at_finish() {
    let mut decoder = SseDecoder::default();
    assert!(decoder.feed(b"data: a\n\ndata: b\ndata: c").unwrap().len() == 1);
    assert_eq!(data(&decoder.finish().unwrap()), ["b\nc"]);

    let mut decoder = NdjsonDecoder::default();
    assert_eq!(decoder.feed(b"{}\n\n  \n{\"last\":true}").unwrap(), ["{}"]);
    assert_eq!(decoder.finish().unwrap(), ["{\"last\":true}"]);
}

#[test]
fn an_8_mib_line_in_1024_chunks_is_decoded_with_linear_work() {
    let payload = "x".repeat(8 * 1024 * 1024);
    let input = format!("data: {payload}\n\n");
    let bytes = input.as_bytes();
    let chunk_len = bytes.len().div_ceil(1024);

    let mut decoder = SseDecoder::new(DEFAULT_MAX_LINE_BYTES);
    let mut events = Vec::new();
    for chunk in bytes.chunks(chunk_len) {
        events.extend(decoder.feed(chunk).unwrap());
    }
    events.extend(decoder.finish().unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.len(), payload.len());
    assert!(
        decoder.bytes_scanned() < 3 * bytes.len() as u64,
        "{}",
        decoder.bytes_scanned()
    );

    let input = format!("{{\"p\":\"{payload}\"}}\n");
    let bytes = input.as_bytes();
    let mut decoder = NdjsonDecoder::new(DEFAULT_MAX_LINE_BYTES);
    let mut lines = Vec::new();
    for chunk in bytes.chunks(chunk_len) {
        lines.extend(decoder.feed(chunk).unwrap());
    }
    assert_eq!(lines.len(), 1);
    assert!(
        decoder.bytes_scanned() < 3 * bytes.len() as u64,
        "{}",
        decoder.bytes_scanned()
    );
}

#[test]
fn a_line_over_the_cap_is_a_typed_decode_error() {
    // Over the cap within one chunk, across chunks without a line end, and at finish.
    let long = [b'a'; 100];
    let mut decoder = SseDecoder::new(64);
    let err = decoder
        .feed(&[b"data: ", &long[..], b"\n"].concat())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message().contains("longer than the 64-byte limit"),
        "{err}"
    );
    assert!(
        err.raw_body()
            .is_some_and(|raw| raw.starts_with("data: aaa"))
    );
    // The decoder stays failed rather than resynchronising on garbage.
    assert_eq!(
        decoder.feed(b"data: ok\n\n").unwrap_err().kind(),
        ErrorKind::Decode
    );

    let mut decoder = SseDecoder::new(64);
    for chunk in long.chunks(10).take(6) {
        decoder.feed(chunk).unwrap();
    }
    assert_eq!(
        decoder.feed(&long[..10]).unwrap_err().kind(),
        ErrorKind::Decode
    );

    let mut decoder = NdjsonDecoder::new(64);
    decoder.feed(&long[..64]).unwrap();
    let err = decoder.feed(b"a").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("NDJSON"), "{err}");

    // Exactly at the cap is fine.
    let mut decoder = NdjsonDecoder::new(64);
    assert_eq!(
        decoder.feed(&[&long[..64], b"\n"].concat()).unwrap().len(),
        1
    );
}

#[test]
fn events_before_a_bad_line_in_the_same_chunk_are_kept() {
    let mut decoder = SseDecoder::new(16);
    let events = decoder
        .feed(b"data: ok\n\ndata: this line is far too long\n")
        .unwrap();
    assert_eq!(data(&events), ["ok"]);
    assert_eq!(decoder.feed(b"").unwrap_err().kind(), ErrorKind::Decode);

    let mut decoder = NdjsonDecoder::new(64);
    assert_eq!(decoder.feed(b"{}\n\xff\n").unwrap(), ["{}"]);
    assert_eq!(decoder.finish().unwrap_err().kind(), ErrorKind::Decode);
}
