//! An upstream's streamed answer read as events while its chunks arrive (the cutting itself is
//! `tollgate_providers::sse_frames`, which keeps each OpenAI-family event's own bytes for the relay).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tollgate_providers::sse_frames::{FrameSplitter, UpstreamEvent};

/// The events of a stream of byte chunks. A transport error is passed on as `sse-parse` reports
/// it (`transport error: …`), so the messages clients and records see are unchanged.
pub struct UpstreamEvents<S> {
    chunks: Pin<Box<S>>,
    splitter: FrameSplitter,
    ended: bool,
}

impl<S> UpstreamEvents<S> {
    pub fn new(chunks: S) -> UpstreamEvents<S> {
        UpstreamEvents {
            chunks: Box::pin(chunks),
            splitter: FrameSplitter::new(),
            ended: false,
        }
    }
}

impl<S, E> Stream for UpstreamEvents<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<UpstreamEvent, sse_parse::Error<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.splitter.next_event() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.chunks.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => this.splitter.feed(chunk),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(sse_parse::Error::Transport(e)))),
                Poll::Ready(None) => {
                    this.ended = true;
                    this.splitter.finish();
                }
            }
        }
    }
}
