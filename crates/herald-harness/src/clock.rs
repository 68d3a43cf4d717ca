//! Wall-clock time in microseconds: the one clock that means the same in
//! every process of a run (a load generator's workers, its coordinator, the
//! samplers), since they share one machine.

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
