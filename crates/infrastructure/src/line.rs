//! The byte-level line splitter under the SSE and NDJSON decoders.
//!
//! Bytes are buffered until a line is complete and only then turned into text, so a UTF-8
//! character split across network chunks decodes correctly. Each byte is searched exactly once
//! (the scan position survives between chunks), which keeps a long line linear to decode no
//! matter how finely it was chunked.

use exllm_core::{Error, ErrorKind, Result};

/// How many bytes of an offending line an error keeps for diagnosis.
const RAW_PREVIEW_BYTES: usize = 512;

/// Splits a byte stream into lines ended by CR, LF or CRLF.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    /// What is being decoded (`"SSE"`, `"NDJSON"`), for error messages.
    format: &'static str,
    /// Bytes of the current, incomplete line.
    buf: Vec<u8>,
    /// A CR ended the previous chunk: an LF starting the next one belongs to the same line end.
    skip_lf: bool,
    max_line_bytes: usize,
    /// Bytes searched for line ends so far; the linear-work tests assert on it.
    scanned: u64,
    /// Set once an error was returned; the input after it is not trustworthy.
    failed: bool,
}

impl LineSplitter {
    pub(crate) fn new(format: &'static str, max_line_bytes: usize) -> Self {
        Self {
            format,
            buf: Vec::new(),
            skip_lf: false,
            max_line_bytes,
            scanned: 0,
            failed: false,
        }
    }

    pub(crate) fn bytes_scanned(&self) -> u64 {
        self.scanned
    }

    /// Feeds `chunk`, calling `on_line` with every line it completes (without its line end).
    pub(crate) fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_line: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.check_usable()?;
        if chunk.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.skip_lf) && chunk[0] == b'\n' {
            chunk = &chunk[1..];
            self.scanned += 1;
        }
        // Everything already in `buf` was searched by an earlier call and holds no line end.
        let mut pos = self.buf.len();
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[pos..]) {
            let end = pos + offset;
            self.scanned += offset as u64 + 1;
            if end - start > self.max_line_bytes {
                let raw = preview(&self.buf[start..end]);
                return Err(self.fail(raw));
            }
            if let Err(err) = on_line(&self.buf[start..end]) {
                self.failed = true;
                self.buf.clear();
                return Err(err);
            }
            let mut next = end + 1;
            if self.buf[end] == b'\r' {
                match self.buf.get(next) {
                    Some(b'\n') => {
                        next += 1;
                        self.scanned += 1;
                    }
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            start = next;
            pos = next;
        }
        self.scanned += (self.buf.len() - pos) as u64;
        // Only the incomplete tail moves, and it came from this chunk: linear overall.
        self.buf.drain(..start);
        if self.buf.len() > self.max_line_bytes {
            let raw = preview(&self.buf);
            return Err(self.fail(raw));
        }
        Ok(())
    }

    /// Ends the input: a last line without a line end is still a line.
    pub(crate) fn finish(&mut self, mut on_line: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.check_usable()?;
        self.skip_lf = false;
        if self.buf.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.buf);
        on_line(&line).inspect_err(|_| self.failed = true)
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::new(
                ErrorKind::Decode,
                format!("{} decoder used after an earlier decode error", self.format),
            ));
        }
        Ok(())
    }

    fn fail(&mut self, raw: String) -> Error {
        self.failed = true;
        self.buf = Vec::new();
        Error::decode(
            format!(
                "{} line longer than the {}-byte limit",
                self.format, self.max_line_bytes
            ),
            raw,
        )
    }
}

/// A line as text; invalid UTF-8 is a decode error keeping the start of the line.
pub(crate) fn line_text<'a>(format: &str, line: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(line).map_err(|err| {
        Error::decode(
            format!("{format} line is not valid UTF-8: {err}"),
            preview(line),
        )
    })
}

/// The first bytes of `bytes` as text; a character cut at the end becomes U+FFFD.
pub(crate) fn preview(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RAW_PREVIEW_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

/// The output of a feed: an error with nothing decoded before it is returned now; one that
/// follows decoded items is kept in `deferred` so those items are returned first.
pub(crate) fn defer<T>(
    result: Result<()>,
    items: Vec<T>,
    deferred: &mut Option<Error>,
) -> Result<Vec<T>> {
    match result {
        Ok(()) => Ok(items),
        Err(err) if items.is_empty() => Err(err),
        Err(err) => {
            *deferred = Some(err);
            Ok(items)
        }
    }
}
