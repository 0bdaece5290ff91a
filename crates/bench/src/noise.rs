//! CPU used by *other* processes during a measurement. The development machine has 2 CPUs
//! shared with other people's builds and tests; a compiler running beside a measurement takes
//! CPU from the generator or the reader and can turn into loss. We cannot prevent that, but
//! we can report it next to each row so a disturbed row is recognisable.
//!
//! Method: snapshot utime+stime (and start time) of every user-space process in /proc before
//! and after the measurement. Processes that ran in between count with their delta; ones
//! started in between count in full. Our own process (bench and generator thread), its
//! children (reader, nft, ip) and kernel threads (softirq work belongs to the workload) are
//! left out. Processes that both start and exit inside the window are missed: this is a
//! lower bound, good enough to flag a disturbed row.
//!
//! The same snapshots give the machine's idle share over the measurement, which tells a
//! reader that fell behind on an idle machine from one that ran out of CPU.

use std::collections::HashMap;

/// Clock ticks per second for /proc times (`getconf CLK_TCK`; 100 on every Linux ABI that
/// edgecap targets).
const CLK_TCK: f64 = 100.0;
/// `PF_KTHREAD` in the `flags` field of /proc/<pid>/stat.
const PF_KTHREAD: u64 = 0x0020_0000;

/// What we need from one /proc/<pid>/stat line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    ppid: u32,
    flags: u64,
    ticks: u64,
}

/// Parses /proc/<pid>/stat. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last ')'.
fn parse_stat(line: &str) -> Option<Proc> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Proc {
        ppid: u32::try_from(num(4)?).ok()?,
        flags: num(9)?,
        ticks: num(14)? + num(15)?,
    })
}

/// Machine-wide (idle, total) ticks from the first line of /proc/stat. Idle includes iowait.
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    Some((v.get(3)? + v.get(4)?, total))
}

/// A snapshot of every process's CPU ticks, and of the machine's idle time.
#[derive(Debug, Default)]
pub struct Snapshot {
    procs: HashMap<u32, Proc>,
    machine: Option<(u64, u64)>,
}

impl Snapshot {
    pub fn take() -> Self {
        let mut map = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                if let Some(p) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|s| parse_stat(&s))
                {
                    map.insert(pid, p);
                }
            }
        }
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| machine_ticks(&s));
        Snapshot {
            procs: map,
            machine,
        }
    }

    /// Share of all CPUs' time that was idle between `self` and `later`, in percent. Near 0
    /// means the machine was saturated: generator, kernel and reader wanted more CPU.
    pub fn idle_pct_until(&self, later: &Snapshot) -> Option<f64> {
        let ((i0, t0), (i1, t1)) = (self.machine?, later.machine?);
        let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
        Some(100.0 * i1.saturating_sub(i0) as f64 / total as f64)
    }

    /// CPU seconds other processes used between `self` and `later`.
    pub fn foreign_cpu_until(&self, later: &Snapshot) -> f64 {
        let me = std::process::id();
        let ticks: u64 = later
            .procs
            .iter()
            .filter(|(pid, p)| **pid != me && p.ppid != me && p.flags & PF_KTHREAD == 0)
            .map(|(pid, p)| match self.procs.get(pid) {
                Some(before) if before.ticks <= p.ticks => p.ticks - before.ticks,
                // Started (or the pid was reused) inside the window: all of it is new.
                _ => p.ticks,
            })
            .sum();
        ticks as f64 / CLK_TCK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_strange_name() {
        let line = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 \
                    99 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Proc {
                ppid: 17,
                flags: 4_194_560,
                ticks: 325
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn counts_deltas_and_new_processes_but_not_kernel_threads() {
        let p = |ticks, flags| Proc {
            ppid: 1,
            flags,
            ticks,
        };
        let before = Snapshot {
            procs: HashMap::from([(10, p(100, 0)), (11, p(5, PF_KTHREAD))]),
            machine: Some((1000, 4000)),
        };
        let after = Snapshot {
            procs: HashMap::from([(10, p(150, 0)), (11, p(500, PF_KTHREAD)), (12, p(30, 0))]),
            machine: Some((1100, 4400)),
        };
        assert!((before.foreign_cpu_until(&after) - 0.8).abs() < 1e-9);
        assert_eq!(before.idle_pct_until(&after), Some(25.0));
    }

    #[test]
    fn reads_machine_ticks() {
        let stat = "cpu  10 1 20 300 5 0 4 0 0 0\ncpu0 5 0 10 150 2 0 2 0 0 0\n";
        assert_eq!(machine_ticks(stat), Some((305, 340)));
    }
}
