//! Receipts of private messages: how far one got, derived from what its
//! receiver's side stores, and the live `receipt` pushed to its sender when
//! that moves (best effort: the stored state is the record).

use herald_protocol::{Receipt, ReceiptState, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::Store;
use crate::read_state::{Level, ReadState};

/// Pushes a receipt in `state` from `receiver` to the sender of each
/// message; a failure is logged (the state itself is stored).
pub(crate) async fn push_receipts<'a>(
    store: &dyn Store,
    receiver: &str,
    state: ReceiptState,
    messages: impl Iterator<Item = (&'a str, Uuid)>,
) {
    let ts = OffsetDateTime::now_utc();
    for (sender, id) in messages {
        let receipt = Receipt {
            peer: receiver.to_owned(),
            id,
            state,
            ts,
        };
        if let Err(e) = store.push_receipt(sender, &receipt).await {
            tracing::warn!(%e, "receipt not pushed");
        }
    }
}

/// How far a message at inbox seq `seq` of a receiver got.
pub(crate) fn receipt_of(seq: u64, receiver: &ReadState, delivered: u64) -> ReceiptState {
    let flags = receiver.marks(Stream::Inbox).flags(seq);
    if flags.level == Level::Read {
        ReceiptState::Read
    } else if seq <= delivered {
        ReceiptState::Delivered
    } else {
        ReceiptState::Sent
    }
}
