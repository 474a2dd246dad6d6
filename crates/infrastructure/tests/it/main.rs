//! Integration tests of exllm-infrastructure: the stream decoders, the HTTP executor over real
//! TCP against the fixture server, and the fixture server itself.

mod decoders;
mod executor;
mod fixture_server;
mod limits_cache;
mod resilience;
mod tokens;

use std::path::PathBuf;

/// The bytes of a recorded fixture under `shared/fixtures/`.
fn fixture(path: &str) -> Vec<u8> {
    let full: PathBuf = [env!("CARGO_MANIFEST_DIR"), "../../../shared/fixtures", path]
        .iter()
        .collect();
    std::fs::read(&full).unwrap_or_else(|err| panic!("read fixture {}: {err}", full.display()))
}

/// A fixture as text.
fn fixture_text(path: &str) -> String {
    String::from_utf8(fixture(path)).expect("fixture is UTF-8")
}
