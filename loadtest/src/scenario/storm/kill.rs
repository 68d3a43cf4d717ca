//! The node failure itself: SIGKILL to every victim at the same moment,
//! as a machine or container dying would — no drain, no `reconnect`
//! frame, sockets closed by the kernel.
//!
//! Only PIDs given on the command line are touched, and only if they
//! still name a `herald` process (a PID reused since the script started
//! the node is left alone).

use std::time::Duration;

use anyhow::bail;
use herald_harness::clock::unix_micros;

use crate::bounded::wait_until;

/// The command name of `pid`, from `/proc/<pid>/comm`.
fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim().to_owned())
}

/// Whether `pid` is gone or a zombie (killed, not yet reaped by its parent).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Checks every victim before the run, so a wrong PID fails early.
pub fn check_victims(pids: &[u32]) -> anyhow::Result<()> {
    for &pid in pids {
        match comm(pid) {
            Some(c) if c == "herald" => {}
            Some(c) => bail!("--victim-pid {pid} is `{c}`, not a herald node"),
            None => bail!("--victim-pid {pid}: no such process"),
        }
    }
    Ok(())
}

/// SIGKILLs every victim, one syscall after the other; returns when the
/// first signal went out (unix µs), the moment resume times count from.
pub fn kill_all(pids: &[u32]) -> anyhow::Result<u64> {
    check_victims(pids)?;
    let at = unix_micros();
    for &pid in pids {
        // SAFETY: kill has no memory preconditions; the PID was checked
        // to be a herald node just above.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } != 0 {
            bail!("kill -9 {pid}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(at)
}

/// Waits (at most `limit`) until every victim is gone; false if one lives.
pub async fn wait_gone(pids: &[u32], limit: Duration) -> bool {
    let all_gone = || pids.iter().all(|&p| gone(p));
    wait_until(limit, Duration::from_millis(10), all_gone).await
}
