//! Stream decoding speed: the SSE and NDJSON decoders against a baseline measured in the same
//! run (splitting the whole body at once, the least work any decoder can do), so that figures
//! are read as ratios, not absolute times. Run with `cargo bench -p exllm-infrastructure`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exllm_infrastructure::{NdjsonDecoder, SseDecoder};

/// A recorded OpenAI stream repeated to about 1 MiB (synthetic when the fixtures are absent).
fn sse_body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/openai/stream-text-gpt4o.sse"
    );
    let one = std::fs::read(path).unwrap_or_else(|_| {
        (0..50)
            .map(|i| {
                format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"token {i} \"}}}}]}}\n\n")
            })
            .collect::<String>()
            .into_bytes()
    });
    one.repeat((1 << 20) / one.len().max(1) + 1)
}

/// The same events as NDJSON lines.
fn ndjson_body(sse: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(sse)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .flat_map(|l| [l, "\n"])
        .collect::<String>()
        .into_bytes()
}

/// The baseline: the whole body in memory, split at blank lines and `data:` prefixes.
fn baseline_sse(body: &[u8]) -> usize {
    let text = std::str::from_utf8(body).unwrap_or_default();
    text.split("\n\n")
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .count()
}

fn decoders(c: &mut Criterion) {
    let sse = sse_body();
    let ndjson = ndjson_body(&sse);
    let mut group = c.benchmark_group("stream decoding, 4 KiB chunks");
    group.throughput(Throughput::Bytes(sse.len() as u64));
    group.bench_function("baseline: split the whole body", |b| {
        b.iter(|| black_box(baseline_sse(black_box(&sse))))
    });
    group.bench_function("SseDecoder", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::default();
            let mut events = 0;
            for chunk in sse.chunks(4096) {
                events += decoder.feed(chunk).map(|e| e.len()).unwrap_or(0);
            }
            events += decoder.finish().map(|e| e.len()).unwrap_or(0);
            black_box(events)
        })
    });
    group.throughput(Throughput::Bytes(ndjson.len() as u64));
    group.bench_function("NdjsonDecoder", |b| {
        b.iter(|| {
            let mut decoder = NdjsonDecoder::default();
            let mut lines = 0;
            for chunk in ndjson.chunks(4096) {
                lines += decoder.feed(chunk).map(|l| l.len()).unwrap_or(0);
            }
            lines += decoder.finish().map(|l| l.len()).unwrap_or(0);
            black_box(lines)
        })
    });
    group.finish();
}

criterion_group!(benches, decoders);
criterion_main!(benches);
