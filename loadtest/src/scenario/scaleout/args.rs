//! The `scaleout` command line (its workers are `storm`'s).

use std::path::PathBuf;

use clap::Args;

use crate::scenario::storm::fleet_args::FleetArgs;

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("900")))]
#[command(mut_arg("per_worker", |a| a.default_value("12000")))]
#[command(mut_arg("clients", |a| a.default_value("34000")))]
#[command(mut_arg("baseline", |a| a.default_value("10")))]
#[command(mut_arg("target_secs", |a| a.default_value("120").help(
    "The target: every node within the band of the mean this many seconds after the new nodes \
     were asked to start"
)))]
pub struct ScaleoutArgs {
    /// A node running from the start (base URL); repeat. Client i connects
    /// to first node i mod (number of first nodes); the API traffic goes to
    /// these in turn.
    #[arg(long = "first", required = true)]
    pub first: Vec<String>,
    /// A node started at the scale-out (base URL, its port free until
    /// then); repeat. Refuses connections until it runs.
    #[arg(long = "new", required = true)]
    pub new: Vec<String>,
    /// The file this run creates when the new nodes are to start: the
    /// script waits for it, then starts them.
    #[arg(long)]
    pub start_file: PathBuf,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The band: every node within mean × (1 ± this).
    #[arg(long, default_value_t = 0.15)]
    pub tolerance: f64,
    /// The target: moves at most this many times the ideal number.
    #[arg(long, default_value_t = 1.2)]
    pub max_move_ratio: f64,
    /// Seconds the nodes' counts must stay in the band, with no node
    /// moving, before the watch ends (above the nodes' settle and interval).
    #[arg(long, default_value_t = 20)]
    pub quiet: u64,
    /// Seconds after the start of the new nodes after which the watch ends
    /// anyway.
    #[arg(long, default_value_t = 300)]
    pub watch_timeout: u64,
}

impl ScaleoutArgs {
    /// Every node: the first ones, then the new ones.
    pub fn nodes(&self) -> Vec<String> {
        self.first.iter().chain(&self.new).cloned().collect()
    }
}
