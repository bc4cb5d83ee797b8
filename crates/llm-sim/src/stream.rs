//! `stream: true`: the answer as OpenAI's server-sent events.
//!
//! ```text
//! data: {"id":..,"object":"chat.completion.chunk",..,"choices":[{"index":0,"delta":{"role":"assistant","content":"the "},"finish_reason":null}]}
//! data: {..,"choices":[{"index":0,"delta":{"content":"sim "},"finish_reason":null}]}
//! data: {..,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
//! data: {..,"choices":[],"usage":{..}}          (with stream_options.include_usage)
//! data: [DONE]
//! ```
//!
//! Timing: with a sampled latency `D` and `stream.ttft_fraction` `f`, the
//! first content chunk is sent at `T = round(f * D)` ms (the time to first
//! token) and, of `n` content chunks, chunk `i` at `T + (D - T) * i / n`; the
//! finishing chunk (with the usage chunk and `[DONE]`) at exactly `D`. Times
//! are offsets from the start of the answer, so the timers do not drift.

use std::{convert::Infallible, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    chat::{CompletionId, Usage},
    config::StreamConfig,
    state::SimState,
};

/// A successful answer, to be streamed.
pub(crate) struct Streamed<'a> {
    pub(crate) id: CompletionId,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) content: &'a str,
    pub(crate) finish_reason: &'static str,
    /// `Some` when the request asked for `stream_options.include_usage`.
    pub(crate) usage: Option<&'a Usage>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: CompletionId,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

/// `content` in pieces of `chars` characters (at least one piece, maybe empty).
fn pieces(content: &str, chars: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .nth(chars)
            .map_or(rest.len(), |(i, _)| i);
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    if out.is_empty() {
        out.push("");
    }
    out
}

/// When each of `n` content chunks and the finishing chunk are sent, as
/// offsets from the start: `n + 1` offsets, the last one `delay`.
pub(crate) fn schedule(delay: Duration, ttft_fraction: f64, n: usize) -> (Duration, Vec<Duration>) {
    let total_us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
    let delay_ms = total_us / 1000;
    let ttft_ms = ((delay_ms as f64) * ttft_fraction.clamp(0.0, 1.0)).round() as u64;
    let ttft_us = ttft_ms.saturating_mul(1000).min(total_us);
    let rest_us = total_us - ttft_us;
    let n = n.max(1) as u64;
    let offsets = (0..=n)
        .map(|i| {
            let spread = u128::from(rest_us) * u128::from(i) / u128::from(n);
            Duration::from_micros(ttft_us + u64::try_from(spread).unwrap_or(rest_us))
        })
        .collect();
    (Duration::from_micros(ttft_us), offsets)
}

impl Streamed<'_> {
    fn event(&self, out: &mut Vec<u8>, chunk: &Chunk<'_>) -> serde_json::Result<()> {
        out.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut *out, chunk)?;
        out.extend_from_slice(b"\n\n");
        Ok(())
    }

    fn chunk<'c>(&'c self, choices: &'c [ChunkChoice<'c>]) -> Chunk<'c> {
        Chunk {
            id: self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model,
            choices,
            usage: None,
        }
    }

    /// The frames to send and when.
    fn frames(
        &self,
        delay: Duration,
        config: StreamConfig,
    ) -> serde_json::Result<(Duration, Vec<(Duration, Bytes)>)> {
        let chars = (config.chunk_tokens as usize).saturating_mul(4).max(1);
        let pieces = pieces(self.content, chars);
        let (ttft, offsets) = schedule(delay, config.ttft_fraction, pieces.len());
        let mut frames = Vec::with_capacity(pieces.len() + 1);
        for (i, piece) in pieces.iter().enumerate() {
            let choices = [ChunkChoice {
                index: 0,
                delta: Delta {
                    role: (i == 0).then_some("assistant"),
                    content: Some(piece),
                },
                finish_reason: None,
            }];
            let mut out = Vec::with_capacity(piece.len() + 200);
            self.event(&mut out, &self.chunk(&choices))?;
            frames.push((offsets[i], Bytes::from(out)));
        }
        let finish = [ChunkChoice {
            index: 0,
            delta: Delta {
                role: None,
                content: None,
            },
            finish_reason: Some(self.finish_reason),
        }];
        let mut out = Vec::with_capacity(512);
        self.event(&mut out, &self.chunk(&finish))?;
        if let Some(usage) = self.usage {
            let mut last = self.chunk(&[]);
            last.usage = Some(usage);
            self.event(&mut out, &last)?;
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        frames.push((offsets[pieces.len()], Bytes::from(out)));
        Ok((ttft, frames))
    }

    /// The `text/event-stream` response; its frames are sent on schedule
    /// while the client reads (and stop when it goes away or on shutdown).
    pub(crate) fn respond(
        &self,
        state: SimState,
        delay: Duration,
        config: StreamConfig,
    ) -> serde_json::Result<Response> {
        let (ttft, frames) = self.frames(delay, config)?;
        let start = Instant::now();
        let body = futures::stream::unfold(
            (state, frames.into_iter()),
            move |(state, mut frames)| async move {
                let (offset, bytes) = frames.next()?;
                if !state.sleep_until(start + offset).await {
                    return None;
                }
                Some((Ok::<Bytes, Infallible>(bytes), (state, frames)))
            },
        );
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let ttft_ms = u64::try_from(ttft.as_millis()).unwrap_or(u64::MAX);
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(crate::DELAY_HEADER, HeaderValue::from(delay_ms));
        headers.insert(crate::TTFT_HEADER, HeaderValue::from(ttft_ms));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn content_is_cut_into_pieces_of_whole_characters() {
        assert_eq!(pieces("", 4), [""]);
        assert_eq!(pieces("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(pieces("ééééé", 2), ["éé", "éé", "é"]);
        assert_eq!(pieces("abcdefghij", 4).concat(), "abcdefghij");
    }

    #[test]
    fn the_schedule_puts_the_first_token_at_the_fraction_and_ends_at_the_delay() {
        let (ttft, offsets) = schedule(Duration::from_millis(1000), 0.2, 4);
        assert_eq!(ttft, Duration::from_millis(200));
        assert_eq!(
            offsets,
            [200, 400, 600, 800, 1000].map(Duration::from_millis)
        );
        let (ttft, offsets) = schedule(Duration::from_millis(1001), 0.5, 3);
        assert_eq!(ttft, Duration::from_millis(501));
        assert_eq!(*offsets.last().unwrap(), Duration::from_millis(1001));
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
        let (ttft, offsets) = schedule(Duration::ZERO, 0.2, 3);
        assert_eq!(ttft, Duration::ZERO);
        assert!(offsets.iter().all(|o| o.is_zero()));
        let (ttft, offsets) = schedule(Duration::from_millis(10), 1.0, 1);
        assert_eq!(ttft, Duration::from_millis(10));
        assert_eq!(offsets, [10, 10].map(Duration::from_millis));
    }
}
