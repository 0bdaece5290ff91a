//! Root-only tests: they run as root; without it they skip with a note, except under
//! `CI=true`, where a missing privilege is a failure, never a silent skip.

/// True when this process's effective uid is 0. Otherwise: panics under `CI=true`, or prints
/// a note and returns false (the test returns early).
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test needs root (network namespaces, nftables) and CI=true forbids skipping");
    }
    eprintln!("skipping: needs root");
    false
}

/// True when this process's effective uid is 0 (for the benchmarks, which refuse rather
/// than skip).
pub fn is_root() -> bool {
    effective_uid() == Some(0)
}

/// The effective uid, from the `Uid:` line of `/proc/self/status` (real, effective, saved,
/// filesystem): no `unsafe` call needed.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}
