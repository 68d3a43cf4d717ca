//! What a connection owes its client: the replies to its pipelined `send`s,
//! being worked out, and the frames written since the last flush.

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use herald_core::{SendOrder, Turn};
use herald_protocol::Reply;

/// Most `send`s of one connection being stored at once. Past it the
/// connection stops reading its socket until one is answered, so a client
/// that pipelines faster than the store keeps up is slowed by TCP.
const MAX_SENDS_IN_FLIGHT: usize = 64;

/// The answer to one `send`, being worked out.
type PendingReply = Pin<Box<dyn Future<Output = Reply> + Send>>;

#[derive(Default)]
pub(crate) struct Outbox {
    /// Boxed and made at the first `send`, so connections that only
    /// receive do not carry it.
    sends: Option<Box<Sends>>,
    /// Frames written since the last flush.
    unflushed: bool,
}

/// One connection's pipelined `send`s.
#[derive(Default)]
struct Sends {
    /// The replies of those in flight, in request order.
    replies: FuturesOrdered<PendingReply>,
    /// The order their appends take in the store.
    order: SendOrder,
}

impl Outbox {
    pub(crate) fn sends_in_flight(&self) -> usize {
        self.sends.as_ref().map_or(0, |s| s.replies.len())
    }

    /// Whether the connection reads another request: fewer than
    /// [`MAX_SENDS_IN_FLIGHT`] `send`s are in flight.
    pub(crate) fn takes_requests(&self) -> bool {
        self.sends_in_flight() < MAX_SENDS_IN_FLIGHT
    }

    /// Pipelines a `send`: `reply` works it out in the turn it is given
    /// (`None` when appending at once keeps the request order; a send
    /// that `awaits_checks` before its append always gets one), and it is
    /// answered in request order.
    pub(crate) fn push_send(
        &mut self,
        awaits_checks: bool,
        reply: impl FnOnce(Option<Turn>) -> PendingReply,
    ) {
        let sends = self.sends.get_or_insert_with(Default::default);
        let turn = sends.order.turn_if_needed(awaits_checks);
        sends.replies.push_back(reply(turn));
    }

    /// The next answered `send`; `None` (a select branch sleeps) when none
    /// is in flight.
    pub(crate) async fn next_reply(&mut self) -> Option<Reply> {
        self.sends.as_mut()?.replies.next().await
    }

    /// The next `send` if it is answered already.
    pub(crate) fn ready_reply(&mut self) -> Option<Reply> {
        self.sends.as_mut()?.replies.next().now_or_never().flatten()
    }

    /// A frame went into the transport's buffer.
    pub(crate) fn wrote(&mut self) {
        self.unflushed = true;
    }

    /// Whether frames were written since the last call (then flush).
    pub(crate) fn take_unflushed(&mut self) -> bool {
        std::mem::take(&mut self.unflushed)
    }
}
