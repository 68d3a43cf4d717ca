//! Records the git commit this binary is built from, for the
//! `herald_build_info` metric: `$HERALD_GIT_COMMIT` if set, else what git
//! says, else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HERALD_GIT_COMMIT");
    // A build without the git checkout (a container build context) passes
    // the commit in the environment.
    if let Ok(commit) = std::env::var("HERALD_GIT_COMMIT") {
        println!("cargo:rustc-env=HERALD_GIT_COMMIT={commit}");
        return;
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HERALD_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs/heads");
}
