//! Operating-system facts the load generator needs: the open-files limit and
//! the resident memory of a process.

use anyhow::{bail, Context};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns it.
///
/// The soft limit is often 1024 by default while the hard limit here is
/// 20,000; without this a worker would fail at its 1,000th connection.
pub fn raise_nofile_limit() -> anyhow::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// Resident set size of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// Resident set size of this process in KiB.
pub fn own_rss_kib() -> u64 {
    rss_kib(std::process::id()).unwrap_or(0)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Microseconds since the Unix epoch. Senders and receivers run on the same
/// machine, so one clock timestamps both ends of a delivery.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A number that tells this run's messages from those of earlier runs
/// against the same gateway or Redis: the gateway replays a user's unacked
/// inbox on connect, so stamps from an old run can arrive during a new one.
pub fn run_nonce() -> u32 {
    let mix = unix_micros() ^ ((std::process::id() as u64) << 20);
    (mix ^ (mix >> 32)) as u32 & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let s = "Name:\therald\nVmPeak:\t  200 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(s), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_own_rss() {
        assert!(own_rss_kib() > 0);
    }
}
