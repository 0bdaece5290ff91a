//! The dispatch benchmark's table: nearest-rank percentiles of the latencies, the server's CPU
//! per round and peak memory, and the targets.

use std::time::Duration;

use super::lab::LabMeasured;
use super::{BenchDispatchArgs, Measured};

pub struct Row {
    pub agents: usize,
    pub rounds: usize,
    pub m: Measured,
    pub cpu: Duration,
    pub hwm_kib: u64,
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| agents | rounds | create -> assign p50 | p99 | all assigned (max) | all running in API (p50) | stop -> agent p50 | p99 | all stopped (max) | all done in API (p50) | server CPU per round | server peak RSS |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
        t.push_str(&format!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {:.1} MiB |\n",
            r.agents,
            r.rounds,
            ms(pct(&r.m.assign, 0.5)),
            ms(pct(&r.m.assign, 0.99)),
            ms(max(&r.m.all_assigned)),
            ms(pct(&r.m.all_running, 0.5)),
            ms(pct(&r.m.stop, 0.5)),
            ms(pct(&r.m.stop, 0.99)),
            ms(max(&r.m.all_stopped)),
            ms(pct(&r.m.all_done, 0.5)),
            ms(r.cpu) / r.rounds as f64,
            r.hwm_kib as f64 / 1024.0,
        ));
    }
    t
}

pub fn targets(rows: &[Row]) -> String {
    let mut t = String::from("Targets (issue 4):\n\n");
    for r in rows {
        let p99 = pct(&r.m.assign, 0.99);
        let mib = r.hwm_kib as f64 / 1024.0;
        t.push_str(&format!(
            "- N = {}: create -> assign p99 {:.1} ms ({}), stop -> every agent {:.1} ms at most, server peak {mib:.1} MiB ({})\n",
            r.agents,
            ms(p99),
            if p99 < Duration::from_secs(1) { "under 1 s: met" } else { "NOT under 1 s" },
            ms(r.m.all_stopped.iter().max().copied().unwrap_or_default()),
            if mib < 200.0 { "under 200 MiB: met" } else { "NOT under 200 MiB" },
        ));
    }
    t
}

/// The real agents' rounds.
pub fn lab_table(m: &LabMeasured) -> String {
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    format!(
        "Real agents (`edgecap agent --netns`, one per lab edge; the capture engine installs, \
         detaches, drains and writes; no traffic):\n\n\
         | edges | rounds | create -> all running p50 | max | stop -> all done p50 | max |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: |\n\
         | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |\n",
        m.edges,
        m.running.len(),
        ms(pct(&m.running, 0.5)),
        ms(max(&m.running)),
        ms(pct(&m.done, 0.5)),
        ms(max(&m.done)),
    )
}

pub fn header(a: &BenchDispatchArgs) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // The database URL may hold a password: not in the report.
    let mut args: Vec<String> = std::env::args().collect();
    for i in 1..args.len() {
        if args[i - 1] == "--database" {
            args[i] = "<database>".into();
        } else if args[i].starts_with("--database=") {
            args[i] = "--database=<database>".into();
        }
    }
    format!(
        "Command: `{}`; {} rounds per fleet size; server: {} on 127.0.0.1 with {}; agents: \
         simulated, in the benchmark's process (they share the machine with the server{}).\n\
         Machine: {cpus} CPUs, kernel {}.\n",
        args.join(" "),
        a.rounds,
        if a.replicas > 1 {
            format!(
                "{} `edgecap server` replicas (CPU summed, peak RSS of the largest)",
                a.replicas
            )
        } else {
            "`edgecap server`".to_owned()
        },
        if a.database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if a.replicas > 1 {
            "s, split among them"
        } else {
            ""
        },
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct(&v, 0.5), Duration::from_millis(50));
        assert_eq!(pct(&v, 0.99), Duration::from_millis(99));
        assert_eq!(pct(&v[..1], 0.99), Duration::from_millis(1));
        assert_eq!(pct(&[], 0.5), Duration::ZERO);
    }
}
