//! A resuming client: what the `storm` and `soak` scenarios connect with.
//!
//! Unlike the idle connections of `conn` (held by the lean reactors, which
//! never answer anything), these clients behave like the browser SDK: they
//! acknowledge what they get, reconnect with jittered backoff to another
//! node, `sync` from the highest seq they have, and dedup by seq; every
//! arrival is booked in a [`ledger`] so that [`check`] can tell, at the
//! end, whether each accepted message arrived exactly once.

pub mod check;
pub mod ledger;
pub mod session;
