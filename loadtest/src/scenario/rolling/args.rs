//! The `rolling` command line (its workers are `storm`'s).

use std::path::PathBuf;

use clap::Args;

use crate::scenario::storm::fleet_args::{FleetArgs, RedisArgs};

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("1200")))]
#[command(mut_arg("per_worker", |a| a.default_value("12000")))]
#[command(mut_arg("clients", |a| a.default_value("36000")))]
#[command(mut_arg("rate", |a| a.default_value("1000")))]
#[command(mut_arg("target_secs", |a| a.help(
    "The target: every client of a node back (resumed elsewhere) within this many seconds of \
     its node's SIGTERM"
)))]
pub struct RollingArgs {
    /// A node running from the start (base URL); repeat. Client i connects
    /// to old node i mod (number of old nodes); rolled in this order.
    #[arg(long = "old", required = true)]
    pub old: Vec<String>,
    /// The PID of each `--old`, in the same order: SIGTERM in its turn
    /// (only a process whose command name is `herald`).
    #[arg(long = "old-pid", required = true)]
    pub old_pids: Vec<u32>,
    /// The replacement of each `--old`, in the same order (base URL, its
    /// port free until then). Refuses connections until it runs.
    #[arg(long = "new", required = true)]
    pub new: Vec<String>,
    /// Where this run creates `start-<i>` when replacement i is to start:
    /// the script waits for each, then starts it.
    #[arg(long)]
    pub start_dir: PathBuf,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Seconds a step may take (replacement ready, then every client back
    /// and the old node gone) before the run gives up.
    #[arg(long, default_value_t = 180)]
    pub step_timeout: u64,
    /// Reconnect as the SDK's node list does (to another node that has
    /// not refused since the last connection) rather than through a
    /// Service (any node at random).
    #[arg(long)]
    pub sdk_list: bool,
    #[command(flatten)]
    pub redis: RedisArgs,
}

impl RollingArgs {
    /// Every node, as the Service lists them: the old ones, then the new.
    pub fn nodes(&self) -> Vec<String> {
        self.old.iter().chain(&self.new).cloned().collect()
    }
}
