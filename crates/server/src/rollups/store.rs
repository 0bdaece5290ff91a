//! The bounded path from agent sessions to the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use edgecap_observe::Second;
use tokio::sync::{mpsc, oneshot};

use super::hitters::Stored;
use crate::db::Db;
use crate::db::rollups::{self, Rollup, Table};

/// Rows the writer inserts in one transaction, at most.
const BATCH_ROWS: usize = 4096;

/// How far ahead of the server's clock a second may be (clock skew), in seconds.
const MAX_AHEAD: i64 = 300;

/// Longest point name accepted.
const MAX_POINT: usize = 64;

enum Msg {
    Seconds { node: String, seconds: Vec<Second> },
    Barrier(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Stats {
    dropped: AtomicU64,
    refused: AtomicU64,
    stored: AtomicU64,
}

/// A handle on the rollup writer; clones share it.
#[derive(Debug, Clone)]
pub struct Rollups {
    tx: mpsc::Sender<Msg>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Seconds { node, seconds } => write!(f, "{node}: {} seconds", seconds.len()),
            Msg::Barrier(_) => write!(f, "barrier"),
        }
    }
}

impl Rollups {
    /// Starts the writer on `db` with room for `queue` batches (one per agent message). Needs
    /// a Tokio runtime. `fine_retention` bounds how old an accepted second may be.
    pub fn start(db: Db, queue: usize, fine_retention: std::time::Duration) -> Rollups {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(Stats::default());
        let oldest = i64::try_from(fine_retention.as_secs()).unwrap_or(i64::MAX);
        tokio::spawn(write(db, rx, stats.clone(), oldest));
        Rollups { tx, stats }
    }

    /// Queues one agent message's seconds. Never waits: when the queue is full the batch is
    /// dropped, counted in [`Rollups::dropped`] and logged.
    pub fn offer(&self, node: &str, seconds: Vec<Second>) {
        if seconds.is_empty() {
            return;
        }
        let n = seconds.len() as u64;
        let msg = Msg::Seconds {
            node: node.to_owned(),
            seconds,
        };
        if let Err(e) = self.tx.try_send(msg) {
            let total = self.stats.dropped.fetch_add(n, Ordering::Relaxed) + n;
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the rollup queue is full",
                mpsc::error::TrySendError::Closed(_) => "the rollup writer has stopped",
            };
            tracing::warn!(
                node,
                seconds = n,
                dropped_total = total,
                "rollup seconds dropped: {why} (the database is behind)"
            );
        }
    }

    /// Seconds dropped because the queue was full (for `/metrics`).
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Seconds refused as malformed (a bad point name, a time out of range).
    pub fn refused(&self) -> u64 {
        self.stats.refused.load(Ordering::Relaxed)
    }

    /// Seconds stored.
    pub fn stored(&self) -> u64 {
        self.stats.stored.load(Ordering::Relaxed)
    }

    /// Waits until every batch queued so far is written (tests, shutdown).
    pub async fn barrier(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Barrier(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// One agent second as a row, or why it is refused.
pub fn row(node: &str, s: &Second, now: i64, oldest: i64) -> Result<Rollup, String> {
    let t = i64::try_from(s.t).map_err(|_| format!("t: {} is out of range", s.t))?;
    if t > now + MAX_AHEAD || t < now.saturating_sub(oldest) {
        return Err(format!(
            "t: {t} is outside the accepted window (the fine retention before now, and \
             {MAX_AHEAD} s ahead)"
        ));
    }
    let point_ok = !s.point.is_empty()
        && s.point.len() <= MAX_POINT
        && s.point
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !point_ok {
        return Err(format!("point: {:?} is not a point name", s.point));
    }
    let account_id = match &s.account {
        None => None,
        Some(a) if edgecap_model::ids::is_id(a) => Some(a.to_ascii_lowercase()),
        Some(a) => return Err(format!("account: {a:?} is not an account id")),
    };
    let cap = edgecap_observe::rollup::SKETCH_CAPACITY;
    if s.top_dst.len() > cap || s.top_src.len() > cap || s.top_dport.len() > cap {
        return Err(format!("top_*: more than {cap} heavy hitters"));
    }
    let sampled = s.families[0].saturating_add(s.families[1]);
    let addr = |h: &[edgecap_observe::Hitter<std::net::IpAddr>]| {
        let list: Vec<edgecap_observe::Hitter<String>> = h
            .iter()
            .map(|x| edgecap_observe::Hitter {
                key: x.key.to_string(),
                count: x.count,
                error: x.error,
            })
            .collect();
        Stored::from_agent(&list, Some(sampled))
    };
    Ok(Rollup {
        node: node.to_owned(),
        point: s.point.clone(),
        account_id,
        t,
        seconds: 1,
        packets: s.packets,
        bytes: s.bytes,
        exact: u64::from(s.exact),
        samples: s.samples,
        one_in: s.one_in,
        families: s.families,
        tcp: s.tcp,
        udp: s.udp,
        icmp: s.icmp,
        other: s.other,
        syn: s.syn,
        rst: s.rst,
        lengths: s.lengths,
        top_dst: addr(&s.top_dst),
        top_src: addr(&s.top_src),
        // Ports: no total to tell a whole list from a cut one, so the floor is kept.
        top_dport: Stored::from_agent(&s.top_dport, None),
        hitters_dropped: false,
    })
}

async fn write(db: Db, mut rx: mpsc::Receiver<Msg>, stats: Arc<Stats>, oldest: i64) {
    while let Some(first) = rx.recv().await {
        let now = crate::clock::unix_now() as i64;
        let mut rows = Vec::new();
        let mut barriers = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Barrier(b) => barriers.push(b),
                Msg::Seconds { node, seconds } => {
                    for s in &seconds {
                        match row(&node, s, now, oldest) {
                            Ok(r) => rows.push(r),
                            Err(reason) => {
                                stats.refused.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(node = %node, %reason, "rollup second refused");
                            }
                        }
                    }
                }
            }
            if rows.len() < BATCH_ROWS && barriers.is_empty() {
                next = rx.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            match rollups::insert_all(&db, Table::Seconds, &rows).await {
                Ok(()) => {
                    stats.stored.fetch_add(rows.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    let n = rows.len() as u64;
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(error = %e, seconds = n, "rollup seconds not stored");
                }
            }
        }
        for b in barriers {
            let _ = b.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: u64, point: &str) -> Second {
        Second {
            t,
            point: point.into(),
            account: None,
            packets: 1,
            bytes: 60,
            exact: true,
            samples: 0,
            one_in: 64,
            families: [0, 0],
            tcp: 0,
            udp: 0,
            icmp: 0,
            other: 0,
            syn: 0,
            rst: 0,
            lengths: [0; 8],
            top_dst: vec![],
            top_src: vec![],
            top_dport: vec![],
        }
    }

    /// A full queue drops the batch at once and counts its seconds; the caller never waits.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let (tx, _rx) = mpsc::channel(1);
        let r = Rollups {
            tx,
            stats: Arc::new(Stats::default()),
        };
        r.offer("edge0", vec![s(1, "pre-firewall"); 3]);
        assert_eq!(r.dropped(), 0);
        r.offer("edge0", vec![s(2, "pre-firewall"); 5]);
        assert_eq!(r.dropped(), 5);
        r.offer("edge0", vec![]);
        assert_eq!(r.dropped(), 5);
    }

    #[test]
    fn malformed_seconds_are_refused_naming_the_field() {
        let now = 1_800_000_000;
        assert!(row("e", &s(now as u64, "pre-firewall"), now, 3600).is_ok());
        let e = row("e", &s(now as u64 + 3600, "pre-firewall"), now, 3600).unwrap_err();
        assert!(e.starts_with("t: "), "{e}");
        let e = row("e", &s(now as u64 - 7200, "pre-firewall"), now, 3600).unwrap_err();
        assert!(e.starts_with("t: "), "{e}");
        let e = row("e", &s(now as u64, "pre firewall;"), now, 3600).unwrap_err();
        assert!(e.starts_with("point: "), "{e}");
        let e = row("e", &s(now as u64, ""), now, 3600).unwrap_err();
        assert!(e.starts_with("point: "), "{e}");
        let mut bad = s(now as u64, "pre-firewall");
        bad.account = Some("../x".into());
        let e = row("e", &bad, now, 3600).unwrap_err();
        assert!(e.starts_with("account: "), "{e}");
        bad.account = Some("0123456789ABCDEF0123456789abcdef".into());
        let r = row("e", &bad, now, 3600).unwrap();
        assert_eq!(
            r.account_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
    }
}
