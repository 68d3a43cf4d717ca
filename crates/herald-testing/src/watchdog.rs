//! Processes that die with the test binary: servers kept in a `static` are
//! never dropped, and must not outlive it.

use std::process::{Child, Command, Stdio};

/// An `sh` that SIGKILLs `child` when our end of its stdin closes, which
/// happens when this process exits in any way.
pub(crate) fn watchdog(child: &Child) -> Option<Child> {
    Command::new("sh")
        .args(["-c", "read _line; kill -9 \"$1\" 2>/dev/null", "sh"])
        .arg(child.id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Kills a watched process with SIGKILL and waits for it; the watchdog
/// first, so it cannot signal a recycled pid later.
pub(crate) fn kill_watched(watchdog: &mut Option<Child>, child: &mut Option<Child>) {
    if let Some(mut watchdog) = watchdog.take() {
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
