//! What a timed message carries so its arrival can be matched and timed:
//! the run (only this run's messages count: a gateway replays an earlier
//! run's unacknowledged messages), the trial (or any other series number),
//! the message's number `k` in it and its scheduled send time.
//!
//! Latency is taken from the *scheduled* time (open loop, see
//! [`crate::pacing`]), so a sender that falls behind shows up as latency.

use herald_protocol::Message;

const RUN_FIELD: &str = "lt_run";
const TRIAL_FIELD: &str = "lt_trial";
const K_FIELD: &str = "lt_k";
const SCHED_FIELD: &str = "lt_sched_us";

/// The stamp of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub run: u32,
    pub trial: u32,
    pub k: u64,
    pub sched_us: u64,
}

impl Stamp {
    /// From a message's `data`, or from its body `lt:<run>:<trial>:<k>:<sched>`
    /// when a gateway does not carry `data` through.
    pub fn read(m: &Message) -> Option<Stamp> {
        let d = &m.data;
        let field = |name: &str| d.get(name).and_then(|v| v.as_u64());
        if let (Some(run), Some(trial), Some(k), Some(sched_us)) = (
            field(RUN_FIELD),
            field(TRIAL_FIELD),
            field(K_FIELD),
            field(SCHED_FIELD),
        ) {
            return Some(Stamp {
                run: run as u32,
                trial: trial as u32,
                k,
                sched_us,
            });
        }
        let mut parts = m.body.strip_prefix("lt:")?.split(':');
        Some(Stamp {
            run: parts.next()?.parse().ok()?,
            trial: parts.next()?.parse().ok()?,
            k: parts.next()?.parse().ok()?,
            sched_us: parts.next()?.parse().ok()?,
        })
    }

    pub fn body(&self) -> String {
        format!(
            "lt:{}:{}:{}:{}",
            self.run, self.trial, self.k, self.sched_us
        )
    }

    /// The stamp of a JSON `message` frame, read without building the
    /// message (the receivers share the cores with the gateways and Redis);
    /// `None` when the frame is something else or carries no stamp in
    /// `data`, and then the full decode decides.
    pub fn read_json(text: &str) -> Option<Stamp> {
        #[derive(serde::Deserialize)]
        struct Frame<'a> {
            #[serde(rename = "type", borrow)]
            kind: &'a str,
            data: Option<Data>,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            lt_run: u32,
            lt_trial: u32,
            lt_k: u64,
            lt_sched_us: u64,
        }
        let frame: Frame = serde_json::from_str(text).ok()?;
        let d = frame.data.filter(|_| frame.kind == "message")?;
        Some(Stamp {
            run: d.lt_run,
            trial: d.lt_trial,
            k: d.lt_k,
            sched_us: d.lt_sched_us,
        })
    }

    pub fn data(&self) -> serde_json::Value {
        serde_json::json!({
            RUN_FIELD: self.run,
            TRIAL_FIELD: self.trial,
            K_FIELD: self.k,
            SCHED_FIELD: self.sched_us,
        })
    }
}

/// Request ids of `send` and `mark` frames: trial in the high bits,
/// message number low, so a reply finds its request without a map.
pub fn rid_for(trial: u32, k: u64) -> i64 {
    ((trial as i64) << 40) | k as i64
}

/// The (trial, message number) of a [`rid_for`] request id.
pub fn from_rid(rid: i64) -> (u32, u64) {
    ((rid >> 40) as u32, (rid & ((1 << 40) - 1)) as u64)
}

/// A stamp's `run`: a random number that tells this run's messages from
/// those of earlier runs against the same gateway or Redis (the gateway
/// replays a user's unacknowledged inbox on connect, so stamps from an old
/// run can arrive during a new one).
pub fn run_nonce() -> u32 {
    rand::random_range(0..=i32::MAX as u32)
}
