//! The one loop that drives a provider's stream frames through its decoder: every event in
//! order, then `Done` or exactly one error. Each wire format supplies only its decoder.

use std::collections::VecDeque;

use exllm_core::{ChatStream, Error, Result, StreamEvent};
use exllm_infrastructure::http::{Frame, FrameStream};
use futures_util::StreamExt;

/// What a wire format's stream decoder offers the pump.
pub(crate) trait FrameDecoder: Send + 'static {
    /// Decodes one frame's payload (an SSE event's data or an NDJSON line).
    fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>>;

    /// Whether the provider said the reply is complete; the pump then finishes without waiting
    /// for the server to close the connection. Formats that end only with the connection
    /// (Gemini) keep the default.
    fn is_done(&self) -> bool {
        false
    }

    /// Attaches what was received to a mid-stream error from the executor.
    fn fail(&self, err: Error) -> Error;

    /// The events that close the stream when the body ends (the complete response), or the
    /// error saying why it is incomplete.
    fn end(self) -> Result<Vec<StreamEvent>>;
}

enum Pump<D> {
    Running(FrameStream, D),
    Ended,
}

/// Drives `frames` through `decoder`.
pub(crate) fn events<D: FrameDecoder>(frames: FrameStream, decoder: D) -> ChatStream {
    let batches = futures_util::stream::unfold(Pump::Running(frames, decoder), |pump| async move {
        let Pump::Running(mut frames, mut decoder) = pump else {
            return None;
        };
        loop {
            let data = match frames.next().await {
                Some(Ok(Frame::Sse(event))) => event.data,
                Some(Ok(Frame::Line(line))) => line,
                // An in-band error (`event: error`, an `{"error": …}` line) arrives as the
                // executor's typed error; what came before it is kept as the partial reply.
                Some(Err(err)) => return Some((batch(Err(decoder.fail(err))), Pump::Ended)),
                None => return Some((batch(decoder.end()), Pump::Ended)),
            };
            match decoder.data(&data) {
                Err(err) => return Some((batch(Err(err)), Pump::Ended)),
                Ok(mut events) if decoder.is_done() => {
                    return Some(match decoder.end() {
                        Ok(more) => {
                            events.extend(more);
                            (batch(Ok(events)), Pump::Ended)
                        }
                        Err(err) => {
                            let mut out = batch(Ok(events));
                            out.push_back(Err(err));
                            (out, Pump::Ended)
                        }
                    });
                }
                Ok(events) if events.is_empty() => {}
                Ok(events) => return Some((batch(Ok(events)), Pump::Running(frames, decoder))),
            }
        }
    });
    Box::pin(batches.flat_map(futures_util::stream::iter))
}

fn batch(events: Result<Vec<StreamEvent>>) -> VecDeque<Result<StreamEvent>> {
    match events {
        Ok(events) => events.into_iter().map(Ok).collect(),
        Err(err) => VecDeque::from([Err(err)]),
    }
}
