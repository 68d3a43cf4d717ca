//! Facts about processes, from the kernel: the open-files limit, and the
//! resident memory and CPU time of a process (a gateway node, Redis, the
//! load generator itself) or of several.

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

/// CPU time (user + system) process `pid` has used so far, in microseconds,
/// from `/proc/<pid>/stat` (clock-tick resolution, usually 10 ms: measure
/// over many operations).
pub fn cpu_micros(pid: u32) -> anyhow::Result<u64> {
    let (user, system) = cpu_split_micros(pid)?;
    Ok(user + system)
}

/// CPU microseconds of a process so far, as (user, system).
pub fn cpu_split_micros(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (user, system) =
        parse_cpu_ticks(&stat).with_context(|| format!("unexpected format of {path}"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok((user * 1_000_000 / hz, system * 1_000_000 / hz))
}

/// Total CPU microseconds of several processes; fails for one that is gone.
pub fn total_cpu_micros(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&p| cpu_micros(p)).sum()
}

/// (user, system) CPU microseconds of each process, in order; (0, 0) for
/// one that is gone, so a killed node does not fail the report it is in.
pub fn cpu_split_each(pids: &[u32]) -> Vec<(u64, u64)> {
    (pids.iter())
        .map(|&p| cpu_split_micros(p).unwrap_or((0, 0)))
        .collect()
}

/// CPU microseconds of each process, in order (0 for one that is gone).
pub fn cpu_each(pids: &[u32]) -> Vec<u64> {
    cpu_split_each(pids).iter().map(|(u, s)| u + s).collect()
}

/// [`cpu_split_each`] summed over the processes.
pub fn cpu_split_total(pids: &[u32]) -> (u64, u64) {
    (cpu_split_each(pids).into_iter()).fold((0, 0), |(u, s), (pu, ps)| (u + pu, s + ps))
}

/// The RSS of the processes summed, in KiB; fails for one that is gone
/// (before a run: a wrong PID).
pub fn rss_total(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

/// Each process's RSS in KiB, 0 for one that is gone.
pub fn rss_each(pids: &[u32]) -> Vec<u64> {
    pids.iter().map(|&p| rss_kib(p).unwrap_or(0)).collect()
}

/// utime and stime (fields 14 and 15) from a `/proc/<pid>/stat` line. The
/// command name (field 2) may contain spaces, so fields are counted after
/// its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
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
    fn parses_cpu_ticks_after_the_command_name() {
        let stat = "4242 (my (odd) cmd) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat).map(|(u, s)| u + s), Some(175));
        assert!(cpu_micros(std::process::id()).is_ok());
    }

    #[test]
    fn reads_own_rss() {
        assert!(own_rss_kib() > 0);
    }

    #[test]
    fn a_gone_process_reads_zero() {
        let own = std::process::id();
        let now = cpu_each(&[own, u32::MAX - 1]);
        assert_eq!(now[1], 0);
    }

    #[test]
    fn rss_of_a_gone_process() {
        let own = std::process::id();
        assert!(rss_total(&[own]).unwrap() > 0);
        assert!(rss_total(&[own, u32::MAX - 1]).is_err());
        assert_eq!(rss_each(&[u32::MAX - 1]), [0]);
    }
}
