//! An incremental decoder for server-sent events (the `text/event-stream` format).
//!
//! It follows the WHATWG event-stream rules where providers rely on them — CR, LF and CRLF line
//! ends (Gemini sends CRLF), `data:` lines joined with `\n`, one optional space after the colon,
//! comment lines ignored — and departs from them where a client must not lose data: an event
//! pending when the input ends is emitted, and an `event:` line alone is enough to dispatch.

use exllm_core::{Error, Result};

use crate::line::{LineSplitter, defer, line_text};

/// The largest line (and so the largest `data:` payload line) a decoder accepts by default.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when the event had one.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field of this event, when it had one.
    pub id: Option<String>,
}

/// Turns byte chunks, split anywhere, into [`SseEvent`]s. Pure: no IO, no clock.
#[derive(Debug)]
pub struct SseDecoder {
    lines: LineSplitter,
    pending: Pending,
    /// A UTF-8 byte-order mark may open the stream and is not part of the first field name.
    at_start: bool,
    /// An error met after some events of the same chunk: those are returned first, the error
    /// on the next call, so no event before a bad line is lost.
    deferred: Option<Error>,
}

/// The event being assembled from the lines seen since the last blank line.
#[derive(Debug, Default)]
struct Pending {
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl Pending {
    fn take(&mut self) -> Option<SseEvent> {
        let pending = std::mem::take(self);
        (pending.has_data || pending.event.is_some()).then_some(SseEvent {
            event: pending.event,
            data: pending.data,
            id: pending.id,
        })
    }
}

impl SseDecoder {
    /// A decoder rejecting lines longer than `max_line_bytes` (see [`DEFAULT_MAX_LINE_BYTES`]).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            lines: LineSplitter::new("SSE", max_line_bytes),
            pending: Pending::default(),
            at_start: true,
            deferred: None,
        }
    }

    /// Feeds the next chunk and returns the events it completes.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`](exllm_core::ErrorKind::Decode) for a line over the limit or one
    /// that is not UTF-8; the decoder is unusable afterwards.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        let mut events = Vec::new();
        let Self {
            lines,
            pending,
            at_start,
            ..
        } = self;
        let result = lines.feed(chunk, |line| on_line(line, pending, at_start, &mut events));
        defer(result, events, &mut self.deferred)
    }

    /// Ends the input and returns what was still pending: a last line without a line end and
    /// an event without its closing blank line.
    ///
    /// # Errors
    /// As [`SseDecoder::feed`].
    pub fn finish(&mut self) -> Result<Vec<SseEvent>> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        let mut events = Vec::new();
        let Self {
            lines,
            pending,
            at_start,
            ..
        } = self;
        let result = lines.finish(|line| on_line(line, pending, at_start, &mut events));
        if result.is_ok() {
            events.extend(self.pending.take());
        }
        defer(result, events, &mut self.deferred)
    }

    /// How many input bytes have been searched for line ends. Each byte is searched once, so
    /// this stays equal to the input length; tests assert on it to prove linear decoding.
    pub fn bytes_scanned(&self) -> u64 {
        self.lines.bytes_scanned()
    }
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE_BYTES)
    }
}

/// Applies one complete line to the pending event.
fn on_line(
    line: &[u8],
    pending: &mut Pending,
    at_start: &mut bool,
    events: &mut Vec<SseEvent>,
) -> Result<()> {
    let mut line = line_text("SSE", line)?;
    if std::mem::take(at_start) {
        line = line.strip_prefix('\u{feff}').unwrap_or(line);
    }
    if line.is_empty() {
        events.extend(pending.take());
        return Ok(());
    }
    if line.starts_with(':') {
        return Ok(());
    }
    let (field, value) = match line.split_once(':') {
        Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
        None => (line, ""),
    };
    match field {
        "data" => {
            if pending.has_data {
                pending.data.push('\n');
            }
            pending.data.push_str(value);
            pending.has_data = true;
        }
        "event" => pending.event = Some(value.to_owned()),
        // The spec ignores ids containing NUL; so do we.
        "id" if !value.contains('\0') => pending.id = Some(value.to_owned()),
        // `retry:` and unknown fields carry nothing a client call needs.
        _ => {}
    }
    Ok(())
}
