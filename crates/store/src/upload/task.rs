//! The upload task: receives chunks from the sink and drives `WriteMultipart`, keeping at
//! most `concurrency` parts in flight (`wait_for_capacity` before every `put`: without it
//! `WriteMultipart` spawns every part at once and memory is unbounded).
//!
//! Every `put` hands over exactly one full chunk, so each spawns exactly one part task and
//! `in_flight` equals the `JoinSet`'s length; `wait_for_capacity(n)` with `n == in_flight`
//! then returns as soon as one part is joined, which is when its slot is freed.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{PutResult, WriteMultipart};
use tokio::sync::mpsc::UnboundedReceiver;

use super::UploadOptions;
use super::slots::Slots;
use crate::store::explain;

/// What the sink sends.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A full chunk (holding one slot).
    Chunk(Bytes),
    /// The last, possibly short, chunk (holding no slot): complete the upload.
    Finish(Bytes),
    /// Give up: abort the upload.
    Abort,
}

enum Next {
    Joined(object_store::Result<()>),
    Msg(Option<Msg>),
}

/// How the task ended.
#[derive(Debug)]
pub(crate) enum Ended {
    Completed(PutResult),
    /// Failed or aborted; `abort` is the outcome of aborting the incomplete upload.
    Failed {
        why: String,
        abort: Result<(), String>,
    },
}

pub(crate) async fn run(
    mut wm: WriteMultipart,
    mut rx: UnboundedReceiver<Msg>,
    slots: Arc<Slots>,
    opts: UploadOptions,
) -> Ended {
    let chunk = opts.chunk_size as u64;
    let mut in_flight = 0usize;
    loop {
        let next = if in_flight > 0 {
            tokio::select! {
                biased;
                r = wm.wait_for_capacity(in_flight) => Next::Joined(r),
                m = rx.recv() => Next::Msg(m),
            }
        } else {
            Next::Msg(rx.recv().await)
        };
        let msg = match next {
            Next::Joined(Ok(())) => {
                in_flight -= 1;
                slots.confirmed(chunk, true);
                continue;
            }
            Next::Joined(Err(e)) => {
                let why = format!("a part failed: {}", explain(&e));
                return fail(wm, &slots, &opts, why).await;
            }
            Next::Msg(m) => m,
        };
        match msg {
            Some(Msg::Chunk(bytes)) => {
                if in_flight >= opts.concurrency {
                    if let Err(e) = wm.wait_for_capacity(opts.concurrency).await {
                        return fail(wm, &slots, &opts, format!("a part failed: {}", explain(&e)))
                            .await;
                    }
                    let joined = in_flight + 1 - opts.concurrency;
                    for _ in 0..joined {
                        slots.confirmed(chunk, true);
                    }
                    in_flight -= joined;
                }
                wm.put(bytes);
                in_flight += 1;
            }
            Some(Msg::Finish(tail)) => {
                let tail_len = tail.len() as u64;
                if !tail.is_empty() {
                    wm.put(tail);
                }
                // finish() uploads the tail, waits for every part, completes, and aborts on
                // error itself.
                return match wm.finish().await {
                    Ok(put) => {
                        for _ in 0..in_flight {
                            slots.confirmed(chunk, true);
                        }
                        if tail_len > 0 {
                            slots.confirmed(tail_len, false);
                        }
                        Ended::Completed(put)
                    }
                    Err(e) => {
                        let why = format!("completing the upload failed: {}", explain(&e));
                        slots.fail(why.clone());
                        Ended::Failed {
                            why,
                            // WriteMultipart::finish aborted already; an abort error there
                            // is part of `e`.
                            abort: Ok(()),
                        }
                    }
                };
            }
            Some(Msg::Abort) | None => {
                let why = slots
                    .failure()
                    .unwrap_or_else(|| "the upload was abandoned before it finished".to_owned());
                return fail(wm, &slots, &opts, why).await;
            }
        }
    }
}

async fn fail(wm: WriteMultipart, slots: &Slots, opts: &UploadOptions, why: String) -> Ended {
    slots.fail(why.clone());
    let abort = match tokio::time::timeout(opts.abort_timeout, wm.abort()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(explain(&e)),
        Err(_) => Err(format!("no answer within {:.0?}", opts.abort_timeout)),
    };
    Ended::Failed { why, abort }
}
