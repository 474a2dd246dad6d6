//! An incremental decoder for newline-delimited JSON (Ollama's native streams).
//!
//! It only frames: each non-blank line comes out as text, and parsing the JSON is the adapter's
//! job, so a provider's odd line never costs the others a parse.

use exllm_core::{Error, Result};

use crate::line::{LineSplitter, defer, line_text};

/// Turns byte chunks, split anywhere, into lines of JSON text. Pure: no IO, no clock.
#[derive(Debug)]
pub struct NdjsonDecoder {
    lines: LineSplitter,
    /// An error met after some lines of the same chunk, returned on the next call (see
    /// [`SseDecoder`](crate::sse::SseDecoder)).
    deferred: Option<Error>,
}

impl NdjsonDecoder {
    /// A decoder rejecting lines longer than `max_line_bytes`
    /// (see [`DEFAULT_MAX_LINE_BYTES`](crate::sse::DEFAULT_MAX_LINE_BYTES)).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            lines: LineSplitter::new("NDJSON", max_line_bytes),
            deferred: None,
        }
    }

    /// Feeds the next chunk and returns the non-blank lines it completes.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`](exllm_core::ErrorKind::Decode) for a line over the limit or one
    /// that is not UTF-8; the decoder is unusable afterwards.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        let mut out = Vec::new();
        let result = self.lines.feed(chunk, |line| push_line(line, &mut out));
        defer(result, out, &mut self.deferred)
    }

    /// Ends the input and returns a last line that had no line end.
    ///
    /// # Errors
    /// As [`NdjsonDecoder::feed`].
    pub fn finish(&mut self) -> Result<Vec<String>> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        let mut out = Vec::new();
        let result = self.lines.finish(|line| push_line(line, &mut out));
        defer(result, out, &mut self.deferred)
    }

    /// How many input bytes have been searched for line ends (see
    /// [`SseDecoder::bytes_scanned`](crate::sse::SseDecoder::bytes_scanned)).
    pub fn bytes_scanned(&self) -> u64 {
        self.lines.bytes_scanned()
    }
}

impl Default for NdjsonDecoder {
    fn default() -> Self {
        Self::new(crate::sse::DEFAULT_MAX_LINE_BYTES)
    }
}

fn push_line(line: &[u8], out: &mut Vec<String>) -> Result<()> {
    let text = line_text("NDJSON", line)?;
    if !text.trim().is_empty() {
        out.push(text.to_owned());
    }
    Ok(())
}
