//! Downsampling and retention: seconds become minutes, then old rows go.

use std::time::Duration;

use crate::config::Config;
use crate::db::Db;
use crate::db::rollups;
use crate::error::Result;

/// A second is downsampled once its minute ended this long ago (agents send seconds at
/// every heartbeat; a later one still counts: it makes another row of its minute).
pub const LATENESS: i64 = 120;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Seconds taken into minutes.
    pub downsampled: u64,
    /// Rows deleted: seconds past the fine retention, minutes past the retention.
    pub expired_seconds: u64,
    pub expired_minutes: u64,
}

/// Seconds before this (a minute boundary) may have been downsampled by a run at `now` or
/// earlier, and so have lost their heavy-hitter lists; later ones have not.
pub fn downsampled_before(now: i64) -> i64 {
    let c = now - LATENESS;
    c - c.rem_euclid(60)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// One run at unix time `now`: every second whose minute ended [`LATENESS`] ago becomes
/// part of a minute row (one transaction per minute), then seconds older than the fine
/// retention and minutes older than the retention are deleted.
pub async fn run_once(db: &Db, config: &Config, now: i64) -> Result<Report> {
    let mut report = Report::default();
    let cutoff = downsampled_before(now);
    while let Some(oldest) = rollups::oldest_unrolled(db).await? {
        if oldest >= cutoff {
            break;
        }
        let from = oldest - oldest.rem_euclid(60);
        let until = (from + 60).min(cutoff);
        // 63 random bits: two batches never share an id in practice, and a batch is read back
        // only within its own minute.
        let batch = i64::try_from(rand::random::<u64>() >> 1)
            .unwrap_or(1)
            .max(1);
        report.downsampled += rollups::downsample(db, from, until, batch).await?;
        // In transactions of their own, after the minute is in: a process that stops between
        // leaves these seconds with their lists until the fine retention ends (space, not
        // answers: only seconds not yet downsampled are read for their lists).
        rollups::drop_lists(db, batch, from, until).await?;
    }
    let (s, m) = rollups::expire(
        db,
        now.saturating_sub(secs(config.rollup_fine_retention)),
        now.saturating_sub(secs(config.rollup_retention)),
    )
    .await?;
    report.expired_seconds = s;
    report.expired_minutes = m;
    Ok(report)
}

/// Runs [`run_once`] every `Config::rollup_job_every` until the handle is aborted.
pub fn start(db: Db, config: std::sync::Arc<Config>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(config.rollup_job_every.max(Duration::from_secs(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let now = crate::clock::unix_now() as i64;
            match run_once(&db, &config, now).await {
                Ok(r) => tracing::debug!(?r, "rollup jobs ran"),
                Err(e) => tracing::error!(error = %e, "rollup downsampling or retention failed"),
            }
        }
    })
}
