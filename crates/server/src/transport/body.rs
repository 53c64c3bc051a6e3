//! Reading a request body (an HTTP body, or a unary gRPC call's one message) bounded in time,
//! bytes and memory, the same way for every protocol and HTTP version.
//!
//! - **Time**: the whole body must arrive before `until` (the body timeout, or the client's own
//!   deadline when that is sooner); a stalled HTTP/1 body, HTTP/2 stream or gRPC message is
//!   answered then, and its stream reset, rather than held for as long as the client likes.
//! - **Bytes**: a declared size (`Content-Length`, a gRPC message's length prefix) over the
//!   limit is refused at once, before any of it is read; an undeclared one as soon as it passes.
//! - **Memory**: every byte is reserved from the server-wide [`BodyBudget`] before it is kept;
//!   a body that would take the budget past its total is refused at once, never buffered.

use std::time::Instant;

use axum::body::Bytes;
use bytes::BytesMut;
use http_body_util::BodyExt;

use super::budget::{BodyBudget, BudgetPermit};

/// How a body says its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// An HTTP body, with its `Content-Length` when it has one.
    Http { content_length: Option<u64> },
    /// One gRPC message: a compressed flag and a 4-byte big-endian length, then the message.
    GrpcMessage,
}

/// The bounds of one body read.
#[derive(Debug, Clone, Copy)]
pub struct BodyBounds {
    /// The most bytes the body may have.
    pub max_bytes: usize,
    /// When the whole body must have arrived.
    pub until: Instant,
    /// Whether `until` is the client's own deadline (sooner than the server's body timeout).
    pub clients_deadline: bool,
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// It is, or says it is, over the limit.
    TooLarge,
    /// It had not arrived by the body timeout.
    TimedOut,
    /// It had not arrived by the client's own deadline.
    ClientDeadline,
    /// Keeping it would take the memory budget past its total.
    OverBudget,
    /// The connection failed or the stream was reset under it.
    Broken,
}

/// A body read in full, and its bytes' reservation in the budget (hold it as long as the body,
/// or what is decoded from it, is in memory).
#[derive(Debug)]
pub struct BoundedBody {
    pub bytes: Bytes,
    pub permit: BudgetPermit,
}

/// Reads `body` within `bounds`, its bytes reserved from `budget` before they are kept.
pub async fn read_bounded<B>(
    body: B,
    framing: Framing,
    bounds: BodyBounds,
    budget: &BodyBudget,
) -> Result<BoundedBody, BodyRefusal>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let timed_out = if bounds.clients_deadline {
        BodyRefusal::ClientDeadline
    } else {
        BodyRefusal::TimedOut
    };
    let mut permit = budget.empty();
    let mut declared = match framing {
        Framing::Http { content_length } => content_length,
        Framing::GrpcMessage => None,
    };
    if let Some(length) = declared {
        reserve(budget, &mut permit, length, bounds.max_bytes)?;
    }
    let capacity = declared.map_or(0, |length| length as usize);
    let mut buffer = BytesMut::with_capacity(capacity);
    let mut body = body;
    let until = tokio::time::Instant::from_std(bounds.until);
    loop {
        let frame = match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => return Err(timed_out),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyRefusal::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing to keep
        };
        let length = buffer.len() + data.len();
        if length > bounds.max_bytes {
            return Err(BodyRefusal::TooLarge);
        }
        if framing == Framing::GrpcMessage && declared.is_none() && length >= 5 {
            let mut prefix = [0u8; 5];
            let have = buffer.len().min(5);
            prefix[..have].copy_from_slice(&buffer[..have]);
            prefix[have..].copy_from_slice(&data[..5 - have]);
            let message = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
            let total = 5 + u64::from(message);
            declared = Some(total);
            reserve(budget, &mut permit, total, bounds.max_bytes)?;
            buffer.reserve((total as usize).saturating_sub(buffer.len()));
        }
        if length > permit.bytes() && !budget.grow_to(&mut permit, length) {
            return Err(BodyRefusal::OverBudget);
        }
        buffer.extend_from_slice(&data);
    }
    Ok(BoundedBody {
        bytes: buffer.freeze(),
        permit,
    })
}

/// Reserves a declared `length`: refused at once when over `max` or over what the budget has.
fn reserve(
    budget: &BodyBudget,
    permit: &mut BudgetPermit,
    length: u64,
    max: usize,
) -> Result<(), BodyRefusal> {
    let length = usize::try_from(length).map_err(|_| BodyRefusal::TooLarge)?;
    if length > max {
        return Err(BodyRefusal::TooLarge);
    }
    if !budget.grow_to(permit, length) {
        return Err(BodyRefusal::OverBudget);
    }
    Ok(())
}

/// A streaming request body (a gRPC client stream: reflection, health `Watch`), bounded as it
/// goes rather than read whole: each frame must arrive within `gap` of the one before (of the
/// start, for the first), and all of them together stay under `max_bytes`. Past either bound
/// the body ends with an error, which ends the call.
#[derive(Debug)]
pub struct BoundedStream<B> {
    inner: B,
    gap: std::time::Duration,
    next_by: std::pin::Pin<Box<tokio::time::Sleep>>,
    left: usize,
}

impl<B> BoundedStream<B> {
    pub fn new(inner: B, gap: std::time::Duration, max_bytes: usize) -> BoundedStream<B> {
        BoundedStream {
            inner,
            gap,
            next_by: Box::pin(tokio::time::sleep(gap)),
            left: max_bytes,
        }
    }
}

/// Why a [`BoundedStream`] ended early.
#[derive(Debug, thiserror::Error)]
pub enum StreamRefusal {
    #[error("the client stream sent nothing for {0} ms")]
    Stalled(u128),
    #[error("the client stream is over its byte limit")]
    TooLarge,
    #[error("the client stream failed: {0}")]
    Broken(String),
}

impl<B> http_body::Body for BoundedStream<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = StreamRefusal;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, StreamRefusal>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, Bytes::len);
                if size > self.left {
                    return Poll::Ready(Some(Err(StreamRefusal::TooLarge)));
                }
                self.left -= size;
                let next_by = tokio::time::Instant::now() + self.gap;
                self.next_by.as_mut().reset(next_by);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Some(Err(StreamRefusal::Broken(err.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.next_by.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err(StreamRefusal::Stalled(self.gap.as_millis()))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use http_body::Frame;
    use prometheus::IntGauge;

    use super::*;

    /// A body of `chunks` that then ends, or, when `stalls`, never does.
    struct Chunks {
        chunks: Vec<Bytes>,
        stalls: bool,
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.chunks.is_empty() {
                return if self.stalls {
                    Poll::Pending
                } else {
                    Poll::Ready(None)
                };
            }
            Poll::Ready(Some(Ok(Frame::data(self.chunks.remove(0)))))
        }
    }

    fn body(chunks: &[&[u8]]) -> Chunks {
        Chunks {
            chunks: chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
            stalls: false,
        }
    }

    fn stalled() -> Chunks {
        Chunks {
            chunks: Vec::new(),
            stalls: true,
        }
    }

    fn budget(bytes: usize) -> BodyBudget {
        BodyBudget::new(bytes, IntGauge::new("in_flight", "test").unwrap())
    }

    fn bounds(max_bytes: usize) -> BodyBounds {
        BodyBounds {
            max_bytes,
            until: Instant::now() + Duration::from_secs(5),
            clients_deadline: false,
        }
    }

    fn http(length: Option<u64>) -> Framing {
        Framing::Http {
            content_length: length,
        }
    }

    #[tokio::test]
    async fn a_body_is_read_and_its_bytes_held_until_dropped() {
        let budget = budget(64 * 1024);
        let read = read_bounded(body(&[b"hel", b"lo"]), http(Some(5)), bounds(100), &budget)
            .await
            .unwrap();
        assert_eq!(&read.bytes[..], b"hello");
        assert_eq!(budget.in_flight_bytes(), 1024);
        drop(read);
        assert_eq!(budget.in_flight_bytes(), 0);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_or_the_budget_is_refused_before_reading() {
        let budget = budget(4 * 1024);
        // The bodies never end: only a refusal before reading can answer.
        let refused = read_bounded(stalled(), http(Some(101)), bounds(100), &budget).await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::TooLarge);
        let refused = read_bounded(stalled(), http(Some(5000)), bounds(1 << 20), &budget).await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::OverBudget);
        assert_eq!(budget.in_flight_bytes(), 0);
    }

    #[tokio::test]
    async fn an_undeclared_body_is_refused_once_it_passes_a_bound() {
        let big = vec![b'x'; 3000];
        let refused = read_bounded(
            body(&[&big, &big]),
            http(None),
            bounds(1 << 20),
            &budget(4096),
        )
        .await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::OverBudget);
        let refused = read_bounded(
            body(&[&big, &big]),
            http(None),
            bounds(5000),
            &budget(1 << 20),
        )
        .await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::TooLarge);
    }

    #[tokio::test]
    async fn a_grpc_message_length_is_checked_from_its_prefix() {
        let budget = budget(1 << 20);
        // 4096 bytes declared, and the stream stalls: refused from the prefix alone.
        let mut stalls = stalled();
        stalls
            .chunks
            .push(Bytes::from_static(&[0, 0, 0, 0x10, 0, 1, 2, 3]));
        let refused = read_bounded(stalls, Framing::GrpcMessage, bounds(1000), &budget).await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::TooLarge);
        // The prefix split across frames.
        let read = read_bounded(
            body(&[&[0, 0], &[0, 0, 3, 1], &[2, 3]]),
            Framing::GrpcMessage,
            bounds(1000),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(&read.bytes[..], &[0, 0, 0, 0, 3, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_client_stream_is_bounded_between_frames_and_in_total() {
        let mut stream = BoundedStream::new(body(&[b"abc", b"def"]), Duration::from_secs(5), 5);
        assert!(stream.frame().await.unwrap().is_ok());
        assert!(matches!(
            stream.frame().await.unwrap(),
            Err(StreamRefusal::TooLarge)
        ));
        let mut stalls = BoundedStream::new(stalled(), Duration::from_millis(30), 100);
        assert!(matches!(
            stalls.frame().await.unwrap(),
            Err(StreamRefusal::Stalled(30))
        ));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let until = BodyBounds {
            max_bytes: 100,
            until: Instant::now() + Duration::from_millis(50),
            clients_deadline: true,
        };
        let refused = read_bounded(stalled(), http(None), until, &budget(4096)).await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::ClientDeadline);
    }
}
