//! `merge: true`: once every node's part succeeded, the server merges the nodes' files into
//! one time-ordered file in the same destination, `<dir>/<capture_id>/merged.<format>`.
//!
//! ```text
//!  writer: last part done, all success, merge asked -> status conversion_running -> queue
//!  merge task (this file): at most `merge_concurrency` at once, each on a thread of its own:
//!    ObjectReader per node file (streaming GET) -> edgecap_pcap::merge (k-way, one packet
//!    per input) -> UploadSink (bounded multipart) -> merged file
//!  -> status success + merged_file, or failed + "merge failed: <why>"
//! ```
//!
//! Memory per merge: each input's 256 KiB read buffer and the reader's queue of network
//! buffers, one packet per input, and the upload's bound (25 MiB with 5 MiB parts), whatever
//! the files' size. Nothing is written to the server's disk: the bytes go from the store back
//! to the store (for a `file://` destination the store is the directory itself). A server that
//! stops mid-merge leaves the capture `conversion_running`; the next start merges it again
//! (the merged object is written whole or not at all, so a second merge replaces nothing
//! partial).

use std::io::BufReader;
use std::sync::Arc;

use edgecap_pcap::Format;
use edgecap_pcap::merge::{MergeError, MergeInput, MergeOptions, merge};
use edgecap_store::{
    Destination, EndpointPolicy, ObjectReader, Store, UploadOptions, UploadSink, layout,
};
use sqlx::Row;
use tokio::sync::{Semaphore, mpsc};

use crate::credentials::{Vault, capture_context};
use crate::db::{Db, replicas};
use crate::error::{Error, Result};
use crate::hub::{MERGE_LEASE, Replica};

/// Bytes read from each input at a time (as `edgecap merge`).
const INPUT_BUFFER: usize = 256 << 10;

/// What a merge needs, read from the database before it starts.
#[derive(Debug)]
struct Job {
    capture_id: String,
    destination: String,
    sealed: Option<String>,
    format: Format,
    /// (node, file key) in node order.
    files: Vec<(String, String)>,
}

/// Takes capture ids to merge until the hub goes away; at most `concurrency` run at once.
/// On a shared database (replicas) each merge first takes the claim `merge:<capture>`, so
/// exactly one replica merges a capture, and keeps it renewed while it runs; a replica that
/// dies mid-merge lets the claim expire, and the sweep's holder queues the merge again.
pub(crate) async fn run(
    db: Db,
    replica: Arc<Replica>,
    vault: Arc<Vault>,
    concurrency: usize,
    endpoints: EndpointPolicy,
    mut rx: mpsc::Receiver<String>,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    while let Some(id) = rx.recv().await {
        // A slot first: captures beyond the running merges wait in the bounded queue.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (db, vault) = (db.clone(), vault.clone());
        let endpoints = endpoints.clone();
        let replica = replica.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(claim) = Claim::take(&db, &replica, &id).await else {
                return;
            };
            let result = match job(&db, &id).await {
                Ok(Some(job)) => merge_on_a_thread(job, vault, endpoints).await,
                // Not (or no longer) waiting for a merge: another process took it.
                Ok(None) => {
                    claim.release(&db).await;
                    return;
                }
                Err(e) => Err(format!("cannot read the capture: {e}")),
            };
            if let Err(e) = record(&db, &id, result).await {
                tracing::error!(capture = %id, error = %e, "cannot record the merge's result");
            }
            claim.release(&db).await;
        });
    }
}

/// A merge's claim (shared database only), renewed while held.
struct Claim {
    name: String,
    replica: Option<Arc<Replica>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Claim {
    /// The claim on `id`'s merge, or None if another merge of it runs (here or elsewhere).
    async fn take(db: &Db, replica: &Arc<Replica>, id: &str) -> Option<Claim> {
        let name = format!("merge:{id}");
        if !replica.shared {
            return Some(Claim {
                name,
                replica: None,
                renewer: None,
            });
        }
        let until = crate::clock::after(MERGE_LEASE);
        match replicas::take(db, &name, &replica.id, &crate::clock::now(), &until).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(capture = %id, "another merge of this capture runs; not merging");
                return None;
            }
            Err(e) => {
                tracing::error!(capture = %id, error = %e, "cannot claim the merge");
                return None;
            }
        }
        let renewer = {
            let (db, replica, name) = (db.clone(), replica.clone(), name.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(MERGE_LEASE / 3).await;
                    let until = crate::clock::after(MERGE_LEASE);
                    let now = crate::clock::now();
                    if let Err(e) = replicas::claim(&db, &name, &replica.id, &now, &until).await {
                        tracing::error!(claim = %name, error = %e, "cannot renew a merge's claim");
                    }
                }
            })
        };
        Some(Claim {
            name,
            replica: Some(replica.clone()),
            renewer: Some(renewer),
        })
    }

    async fn release(mut self, db: &Db) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if let Some(replica) = &self.replica
            && let Err(e) = replicas::release(db, &self.name, &replica.id).await
        {
            tracing::warn!(claim = %self.name, error = %e, "cannot release a merge's claim");
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

/// Captures waiting for a merge that no live replica has claimed (a shared database).
pub(crate) async fn unclaimed(db: &Db) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.id FROM captures c WHERE c.status = 'conversion_running'
           AND NOT EXISTS (SELECT 1 FROM claims k
                           WHERE k.name = 'merge:' || c.id AND k.lease_until > $1)",
    )
    .bind(crate::clock::now())
    .fetch_all(&db.pool)
    .await?)
}

/// Captures waiting for a merge (after a restart, they are merged again).
pub(crate) async fn pending(db: &Db) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM captures WHERE status = 'conversion_running'")
            .fetch_all(&db.pool)
            .await?,
    )
}

async fn job(db: &Db, id: &str) -> Result<Option<Job>> {
    let row = sqlx::query(
        "SELECT request, credentials FROM captures WHERE id = $1 AND status = 'conversion_running'",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let request = crate::db::captures::request_of(id, &row.try_get::<String, _>("request")?)?;
    let files: Vec<(String, Option<String>)> =
        sqlx::query("SELECT node, file FROM capture_nodes WHERE capture_id = $1 ORDER BY position")
            .bind(id)
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("node")?, r.try_get("file")?)))
            .collect::<Result<_>>()?;
    let files = files
        .into_iter()
        .map(|(node, file)| {
            file.map(|f| (node.clone(), f))
                .ok_or_else(|| Error::Corrupt {
                    what: format!("capture {id}"),
                    reason: format!("node {node} succeeded without a file"),
                })
        })
        .collect::<Result<_>>()?;
    let format = request.format.parse().map_err(|e| Error::Corrupt {
        what: format!("capture {id} format"),
        reason: format!("{e}"),
    })?;
    Ok(Some(Job {
        capture_id: id.to_owned(),
        destination: request.destination_conf,
        sealed: row.try_get("credentials")?,
        format,
        files,
    }))
}

/// Runs the blocking merge on a thread of its own (not the runtime's blocking pool, which a
/// shutdown would wait for): the merged file's key, or why it failed.
async fn merge_on_a_thread(
    job: Job,
    vault: Arc<Vault>,
    endpoints: EndpointPolicy,
) -> Result<String, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let id = job.capture_id.clone();
    std::thread::Builder::new()
        .name(format!("merge-{}", &id[..id.len().min(8)]))
        .spawn(move || {
            let _ = tx.send(merge_job(&job, &vault, &endpoints));
        })
        .map_err(|e| format!("cannot start a merge thread: {e}"))?;
    rx.await
        .unwrap_or_else(|_| Err("the merge thread ended without a result".into()))
}

fn merge_job(job: &Job, vault: &Vault, endpoints: &EndpointPolicy) -> Result<String, String> {
    let mut dest =
        Destination::parse(&job.destination, "destination_conf").map_err(|e| e.to_string())?;
    if let Some(sealed) = &job.sealed {
        let creds = vault
            .open(sealed, &capture_context(&job.capture_id))
            .map_err(|e| e.to_string())?;
        dest = dest
            .with_credentials(creds, "destination_conf")
            .map_err(|e| e.to_string())?;
    }
    // The same endpoint policy as when the capture was created: the merge writes where the
    // agents wrote.
    let opts = edgecap_store::StoreOptions {
        endpoints: endpoints.clone(),
        ..edgecap_store::StoreOptions::default()
    };
    let store = Store::open(&dest, &opts, "destination_conf").map_err(|e| e.to_string())?;
    let mut inputs = Vec::with_capacity(job.files.len());
    let mut total = 0u64;
    for (node, key) in &job.files {
        let r = ObjectReader::open(&store, key).map_err(|e| e.to_string())?;
        total += r.size();
        let input = MergeInput::new(node.clone(), BufReader::with_capacity(INPUT_BUFFER, r))
            .map_err(|e| match e {
                MergeError::Read { source, .. } => {
                    format!("{node}'s file {}: {source}", store.describe_key(key))
                }
                other => other.to_string(),
            })?;
        inputs.push(input);
    }
    let out = layout::merged_file(&job.capture_id, job.format).map_err(|e| e.to_string())?;
    // pcap records grow by 16 bytes as pcapng blocks: twice the inputs bound the output.
    let up = UploadOptions::for_size(Some(total.saturating_mul(2).saturating_add(1 << 20)));
    let sink = UploadSink::start(&store, &out, &up).map_err(|e| e.to_string())?;
    let opts = MergeOptions {
        format: job.format,
        section: None,
    };
    // A failed merge drops the sink unfinished, which aborts the upload: no partial object.
    let (summary, sink) = merge(inputs, sink, &opts, |_| {}).map_err(|e| e.to_string())?;
    let report = sink.finish().map_err(|e| e.to_string())?;
    tracing::info!(capture = %job.capture_id, merged = %store.describe_key(&out),
        packets = summary.packets, bytes = report.uploaded, inputs = job.files.len(), "merged");
    Ok(out)
}

async fn record(db: &Db, id: &str, result: Result<String, String>) -> Result<()> {
    let at = crate::clock::now();
    let q = match &result {
        Ok(key) => sqlx::query(
            "UPDATE captures SET status = 'success', merged_file = $2, finished = $3
             WHERE id = $1 AND status = 'conversion_running'",
        )
        .bind(id)
        .bind(key.clone())
        .bind(at),
        Err(why) => {
            tracing::warn!(capture = %id, error = %why, "merge failed");
            sqlx::query(
                "UPDATE captures SET status = 'failed', error_message = $2, finished = $3
                 WHERE id = $1 AND status = 'conversion_running'",
            )
            .bind(id)
            .bind(format!(
                "merge failed: {why}; every node's own file is complete in the destination \
                 (node_results[].file)"
            ))
            .bind(at)
        }
    };
    q.execute(&db.pool).await?;
    Ok(())
}
