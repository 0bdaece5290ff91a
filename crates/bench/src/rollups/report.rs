//! The rollups benchmark's report: per database, the run with rollups beside the run without
//! (CPU, memory, database growth, ratios), then what a node's rollups take in the database
//! per hour and per day with the downsampling and retention jobs, extrapolated from the
//! bytes per row measured.

use super::{BenchRollupsArgs, Run};

/// The server's defaults the extrapolation uses (`Config::rollup_fine_retention`,
/// `Config::rollup_retention`): the run's server has them.
const FINE_RETENTION_H: f64 = 6.0;
const RETENTION_D: f64 = 30.0;

fn mib(b: f64) -> f64 {
    b / (1024.0 * 1024.0)
}

fn ratio(on: f64, off: f64) -> String {
    if off > 0.0 {
        format!("{:.2}x", on / off)
    } else {
        "n/a (off: 0)".to_owned()
    }
}

/// What one node's rollups take, from a run with rollups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Storage {
    /// Bytes per second row and per minute row, indexes included.
    pub second_row: f64,
    pub minute_row: Option<f64>,
    /// Per node: seconds per hour; minutes per day (with the fleet's rows shared out).
    pub seconds_per_hour: f64,
    pub minutes_per_day: Option<f64>,
}

pub fn storage(r: &Run) -> Option<Storage> {
    let s = r.downsampled.unwrap_or(r.after);
    if s.seconds_rows == 0 {
        return None;
    }
    let series = r.rows_per_second as f64;
    let second_row = s.seconds_bytes as f64 / s.seconds_rows as f64;
    let rows = s.minute_rows + s.fleet_minute_rows;
    let minute_row =
        (r.downsampled.is_some() && rows > 0).then(|| s.minutes_bytes as f64 / rows as f64);
    Some(Storage {
        second_row,
        minute_row,
        seconds_per_hour: second_row * series * 3600.0,
        // One row per series and minute, plus the fleet's (node '*') row of each, shared.
        minutes_per_day: minute_row
            .map(|m| m * series * 1440.0 * (1.0 + 1.0 / r.agents.max(1) as f64)),
    })
}

pub fn render(a: &BenchRollupsArgs, runs: &[Run]) -> String {
    let mut md = header(a, runs);
    md.push_str(
        "\n| database | rollups | window | rollup rows sent per s | rows sent (whole run) | stored | dropped | refused | agent -> server bytes per node per s | server CPU (% of one core) | CPU on / off | server peak RSS | database growth over the window | growth on / off |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs {
        let off = runs.iter().find(|o| o.database == r.database && !o.rollups);
        let secs = r.window.as_secs_f64().max(1e-9);
        let cpu_pct = r.cpu.as_secs_f64() / secs * 100.0;
        let growth = r.after.total_bytes as f64 - r.before.total_bytes as f64;
        let (cpu_ratio, growth_ratio) = match (r.rollups, off) {
            (true, Some(o)) => (
                ratio(
                    cpu_pct,
                    o.cpu.as_secs_f64() / o.window.as_secs_f64().max(1e-9) * 100.0,
                ),
                ratio(
                    growth,
                    o.after.total_bytes as f64 - o.before.total_bytes as f64,
                ),
            ),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        let per_node_bytes = match r.rollups {
            true => format!("{:.0}", r.sent_bytes as f64 / r.agents.max(1) as f64 / secs),
            false => "0".to_owned(),
        };
        md.push_str(&format!(
            "| {} | {} | {:.1} s | {:.0} | {} | {} | {} | {} | {per_node_bytes} | {cpu_pct:.1} % | {cpu_ratio} | {:.1} MiB | {:.2} MiB | {growth_ratio} |\n",
            r.database,
            if r.rollups { "on" } else { "off" },
            secs,
            r.window_seconds as f64 / secs,
            r.sent_seconds,
            r.stored,
            r.dropped,
            r.refused,
            r.peak_kib as f64 / 1024.0,
            mib(growth),
        ));
    }
    md.push_str(&format!(
        "\nDatabase space per node, from the bytes per row measured (indexes included), with \
         the server's default jobs: seconds kept {FINE_RETENTION_H} h, minutes kept \
         {RETENTION_D} d (downsampled every minute):\n\n\
         | database | bytes per second row | seconds per node per hour | seconds held per node ({FINE_RETENTION_H} h) | bytes per minute row | minutes per node per day | minutes held per node ({RETENTION_D} d) | steady state per node | without the jobs: per node per day |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    ));
    for r in runs.iter().filter(|r| r.rollups) {
        let Some(s) = storage(r) else {
            md.push_str(&format!(
                "| {} | no rows stored | | | | | | | |\n",
                r.database
            ));
            continue;
        };
        let held_seconds = s.seconds_per_hour * FINE_RETENTION_H;
        let (minute_row, per_day, held_minutes, steady) = match (s.minute_row, s.minutes_per_day) {
            (Some(m), Some(d)) => (
                format!("{m:.0} B"),
                format!("{:.2} MiB", mib(d)),
                format!("{:.1} MiB", mib(d * RETENTION_D)),
                format!("{:.1} MiB", mib(held_seconds + d * RETENTION_D)),
            ),
            _ => {
                let n = match r.downsample_took.is_none() && a.downsample_wait == 0 {
                    true => "not measured (--downsample-wait 0)".to_owned(),
                    false => "not downsampled in time".to_owned(),
                };
                (n.clone(), n.clone(), n.clone(), n)
            }
        };
        md.push_str(&format!(
            "| {} | {:.0} B | {:.1} MiB | {:.1} MiB | {minute_row} | {per_day} | {held_minutes} | {steady} | {:.0} MiB |\n",
            r.database,
            s.second_row,
            mib(s.seconds_per_hour),
            mib(held_seconds),
            mib(s.seconds_per_hour * 24.0),
        ));
    }
    for r in runs.iter().filter(|r| r.rollups) {
        match (r.downsample_took, r.downsampled) {
            (Some(t), Some(d)) => md.push_str(&format!(
                "\n{}: every second was in a minute {:.0} s after the run; {} minute rows of nodes, \
                 {} of the fleet.",
                r.database,
                t.as_secs_f64(),
                d.minute_rows,
                d.fleet_minute_rows
            )),
            (None, Some(d)) => md.push_str(&format!(
                "\n{}: {} seconds were not yet downsampled when the wait ended.",
                r.database, d.unrolled_rows
            )),
            _ => {}
        }
    }
    md.push('\n');
    md
}

fn header(a: &BenchRollupsArgs, runs: &[Run]) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // The database URL may hold a password: not in the report.
    let mut args: Vec<String> = std::env::args().collect();
    for i in 1..args.len() {
        if args[i - 1] == "--postgres" {
            args[i] = "<postgres>".into();
        } else if args[i].starts_with("--postgres=") {
            args[i] = "--postgres=<postgres>".into();
        }
    }
    let rows = runs.iter().map(|r| r.rows_per_second).max().unwrap_or(0);
    format!(
        "Command: `{}`. {} simulated agents in the benchmark's process, each sending a \
         heartbeat every 2 s followed by its rollup seconds since the last one: {} points x \
         (the node + {} account{}) = {rows} rows per node per second, each with heavy hitters \
         (top 10 destinations, sources, ports), a length histogram and protocol counts from \
         a synthetic mix sampled 1 in 64. Server: `edgecap server` (default settings), one \
         process per run; the run without rollups has the same agents sending heartbeats \
         only. Machine: {cpus} CPUs, kernel {}.\n",
        args.join(" "),
        a.agents,
        a.points,
        a.accounts,
        if a.accounts == 1 { "" } else { "s" },
        kernel.trim()
    )
}
