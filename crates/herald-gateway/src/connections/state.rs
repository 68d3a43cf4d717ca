//! A connection's state, one type per concern, each owning its fields: the
//! connection loop (`connection.rs`) changes them only through their
//! methods.

mod counts;
mod liveness;
mod outbox;
mod positions;
mod refusals;

pub(crate) use counts::CountsState;
pub(crate) use liveness::Liveness;
pub(crate) use outbox::Outbox;
pub(crate) use positions::{Backlog, Positions};
pub(crate) use refusals::Refusals;
