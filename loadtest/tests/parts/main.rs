//! The library's parts through their public API, one file (or folder) per
//! part: what each must do, without a gateway. (The tests of a part's
//! private state stay beside it in `src/`.)

mod auth;
mod bounded;
mod cli;
mod cpu;
mod lean;
mod loopback;
mod pacing;
mod pipes;
mod report;
mod stamp;
mod storm_outcome;
mod worker;
