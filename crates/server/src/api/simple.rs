//! Look-back captures (`type: simple`, issue 13): answered at once from the nodes' rings.
//!
//! `POST /pcaps` with `type: simple` (after `validate_create` and the tenancy checks, in
//! `pcaps::create`, and once the account's simple requests per minute admit it,
//! `quota::admit_simple`): the window is `[offset_time - time_limit, offset_time)` (`offset_time`
//! defaults to now; older than `Config::lookback_reach` is refused naming it); each selected
//! node, connected here or to another replica (asked through it, `hub/relay.rs`), is asked
//! for at most `packet_limit` matching samples; the
//! answers are merged in time order within `packet_limit` (`crate::samples`), written in both
//! formats, sealed with the server's secrets key and stored until `Config::sample_retention`
//! ends; or, when the request names a `destination_conf` (checked as a full capture's:
//! `api/target.rs`), written there once (`<capture>/merged.<ext>`, the request's `format`,
//! the capture's `merged_file`) and not kept. The capture is stored finished: a part per node, `success` with its packets or
//! `failed` naming why (an error, no answer in time, not connected, its replica silent); the
//! capture is `failed` when every node failed.
//!
//! `GET /pcaps/{id}/download` of a simple capture returns the file: classic pcap when the
//! `Accept` header asks for `application/vnd.tcpdump.pcap` (Cloudflare's SDKs), pcapng when
//! it asks for `application/x-pcapng`, else the request's `format`.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use edgecap_model::lookback::{MAX_QUERY_SAMPLES, RingQuery};
use edgecap_model::{ApiError, Capture, CreateRequest, Outcome, codes};

use super::body::ok;
use crate::AppState;
use crate::auth::Caller;
use crate::clock;
use crate::credentials::samples_context;
use crate::db::captures::{self, NewPart, StoredRequest};
use crate::db::{parts, samples as files};
use crate::error::HttpError;
use crate::hub::LiveNode;
use crate::hub::lookback::{Ask, Reply};
use crate::samples::{self, NodeSamples};
use crate::tenancy::Access;

/// Samples gathered over all nodes before the merge keeps `packet_limit` of them.
const GATHERED: u64 = MAX_QUERY_SAMPLES;

/// Clock skew tolerated for an `offset_time` in the future.
const SKEW: f64 = 5.0;

/// The nodes a simple capture asks: the request's selection (or every node) among the
/// connected nodes and those seen within the rings' reach but not connected now, which are
/// then named as not connected in the capture's result (a node killed just before the
/// request is missing from the answer, not silently absent). Tenancy applies as for a full
/// capture.
pub async fn select_nodes(
    state: &AppState,
    req: &CreateRequest,
    colo_field: &str,
    access: &Access,
) -> Result<Vec<LiveNode>, HttpError> {
    let mut pool = state.hub.fleet_nodes().await?;
    let since = clock::unix_now() - state.config.lookback_reach.as_secs_f64();
    let offline: Vec<LiveNode> = crate::db::nodes::list(&state.db)
        .await?
        .into_iter()
        .filter(|n| !pool.iter().any(|l| l.info.name == n.name))
        .filter(|n| edgecap_model::ids::parse_rfc3339(&n.last_seen).is_some_and(|t| t >= since))
        // Never sent anything (it is not connected); only named as missing.
        .map(|n| LiveNode::remembered(n, vec![edgecap_model::protocol::FEATURE_BOUNDARY.into()]))
        .collect();
    pool.extend(offline);
    pool.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    let chosen: Vec<LiveNode> = access
        .admit_nodes(req, super::select::select(req, colo_field, &pool)?)?
        .into_iter()
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(HttpError::field_code(
            codes::NO_NODES,
            colo_field,
            "no node to ask: none is connected",
        ));
    }
    Ok(chosen)
}

/// Creates a simple capture from a validated request; `chosen` is the admitted selection.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: &CreateRequest,
    access: &Access,
    chosen: Vec<LiveNode>,
) -> Result<Response, HttpError> {
    let now = clock::unix_now();
    let offset = req.offset_time.unwrap_or(now);
    let reach = state.config.lookback_reach.as_secs_f64();
    if offset > now + SKEW {
        return Err(HttpError::field(
            "offset_time",
            format!(
                "{} is in the future (now: {})",
                edgecap_model::ids::rfc3339(offset),
                edgecap_model::ids::rfc3339(now)
            ),
        ));
    }
    let from = offset - req.time_limit;
    if from < now - reach {
        return Err(HttpError::field(
            "offset_time",
            format!(
                "the window from {} is older than the look-back rings reach ({} back, from {})",
                edgecap_model::ids::rfc3339(from),
                clock::human(state.config.lookback_reach),
                edgecap_model::ids::rfc3339(now - reach)
            ),
        ));
    }
    // A destination, if given, is checked as a full capture's is (a validated bucket of the
    // account, or a directory under the server's --file-root), before anything counts.
    let target = match req.destination_conf.is_empty() {
        true => None,
        false => {
            Some(super::target::resolve(state, &caller.account.id, &req.destination_conf).await?)
        }
    };
    // Cloudflare's limit (quota.rs): counted once the request is valid, before any node is
    // asked; a refusal stores nothing.
    crate::quota::admit_simple(&state.db, &caller.account.id).await?;
    let limit = req.packet_limit.unwrap_or(1);
    let ask = Ask {
        query: RingQuery::of_request(
            req,
            access.prefixes(),
            (from * 1e9) as u64,
            (offset.min(now) * 1e9) as u64,
            limit,
        ),
        deadline: state.config.lookback_deadline,
        total_limit: GATHERED,
    };
    let replies = state.hub.ask(&chosen, &ask).await;
    let mut answered = Vec::new();
    let mut failed = Vec::new();
    for r in replies {
        match r.reply {
            Reply::Answered(a) => answered.push(NodeSamples {
                node: r.node,
                samples: a.samples,
                thinned_by: a.thinned_by,
            }),
            other => {
                let reason = other.reason(&r.node).unwrap_or_else(|| "no answer".into());
                failed.push((r.node, reason));
            }
        }
    }
    let id = crate::secret::new_id();
    let (kept, thinning) = samples::keep(&answered, usize::try_from(limit).unwrap_or(0));
    let comment = format!(
        "edgecap look-back capture {id}: sampled packets (at most 160 bytes each) from {} to {}",
        edgecap_model::ids::rfc3339(from),
        edgecap_model::ids::rfc3339(offset)
    );
    let file = |format| {
        samples::write(&answered, &kept, thinning, format, &comment).map_err(|e| {
            HttpError::from(crate::error::Error::Corrupt {
                what: "look-back file".into(),
                reason: e,
            })
        })
    };
    let pcapng = file(edgecap_pcap::Format::Pcapng)?;
    let pcap = file(edgecap_pcap::Format::Pcap)?;
    // Packets and bytes each node contributed to the file.
    let mut per_node = vec![(0u64, 0u64); answered.len()];
    for (i, s) in &kept {
        per_node[*i].0 += 1;
        per_node[*i].1 += (s.data.len() / 2) as u64;
    }
    let mut stored = StoredRequest::from(req);
    stored.prefixes = access.prefixes();
    // With a destination the file goes there and nothing is kept here; else it is kept
    // sealed for download.
    let (sealed, written) = match &target {
        Some(t) => {
            let (format, bytes) = match req.format.as_str() {
                "pcap" => (edgecap_pcap::Format::Pcap, pcap.bytes),
                _ => (edgecap_pcap::Format::Pcapng, pcapng.bytes),
            };
            let key = write_file(state, t, &id, format, bytes).await?;
            stored.destination_conf = t.canonical.clone();
            (None, Some(key))
        }
        None => {
            let ctx = samples_context(&id);
            let sealed = files::SealedFiles {
                pcapng: state.hub.vault().seal_bytes(&pcapng.bytes, &ctx)?,
                pcap: state.hub.vault().seal_bytes(&pcap.bytes, &ctx)?,
                expires: clock::after(state.config.sample_retention),
            };
            (Some(sealed), None)
        }
    };
    let nodes: Vec<NewPart> = answered
        .iter()
        .map(|n| n.node.clone())
        .chain(failed.iter().map(|(n, _)| n.clone()))
        .map(|node| NewPart {
            node,
            packet_limit: req.packet_limit,
            byte_limit: None,
        })
        .collect();
    let submitted = clock::now();
    let mut tx = state.db.pool.begin().await?;
    captures::insert_in(
        &mut tx,
        &id,
        &caller.account.id,
        &stored,
        &nodes,
        &submitted,
        &submitted,
        None,
    )
    .await?;
    for (n, (packets, bytes)) in answered.iter().zip(&per_node) {
        let outcome = Outcome {
            capture_id: id.clone(),
            ok: true,
            error: None,
            packets: *packets,
            bytes: *bytes,
            lost: 0,
            stop_reason: Some("look-back window answered".into()),
            file: None,
        };
        parts::finish(&mut tx, &n.node, &outcome, &submitted).await?;
    }
    for (node, reason) in &failed {
        parts::fail(&mut tx, &id, node, reason, &submitted).await?;
    }
    parts::refresh(&mut tx, &id, &submitted).await?;
    if !answered.is_empty() {
        files::answered(&mut tx, &id).await?;
    }
    if let Some(sealed) = &sealed {
        files::insert(&mut tx, &id, sealed).await?;
    }
    if let Some(key) = &written {
        sqlx::query("UPDATE captures SET merged_file = $2 WHERE id = $1")
            .bind(&id)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let purged = files::purge(&state.db, &submitted).await?;
    tracing::info!(capture = %id, account = %caller.account.id, answered = answered.len(),
        failed = failed.len(), packets = pcapng.packets, purged, "look-back capture created");
    let capture = captures::get(&state.db, &caller.account.id, &id)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("capture {id} vanished")))?;
    Ok(ok(capture))
}

/// Writes a simple capture's file to its destination (`<dir>/<capture>/merged.<ext>`, the
/// merged file's key); its key. Refused (502, naming `destination_conf`) when the store does
/// not take it: then nothing is stored.
async fn write_file(
    state: &AppState,
    t: &super::target::Target,
    id: &str,
    format: edgecap_pcap::Format,
    bytes: Vec<u8>,
) -> Result<String, HttpError> {
    const FIELD: &str = "destination_conf";
    let bad = |e| crate::destination::bad(e, FIELD);
    let mut dest = edgecap_store::Destination::parse(&t.canonical, FIELD).map_err(bad)?;
    if let Some(c) = &t.credentials {
        dest = dest.with_credentials(c.clone(), FIELD).map_err(bad)?;
    }
    let store = crate::destination::open(&state.config.endpoints, &dest, FIELD).await?;
    let key = edgecap_store::layout::merged_file(id, format).map_err(bad)?;
    store.put_small(&key, bytes).await.map_err(|e| {
        HttpError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            vec![ApiError::field(
                FIELD,
                format!(
                    "the look-back file could not be written to {}: {e}",
                    t.canonical
                ),
            )],
        )
    })?;
    Ok(key)
}

/// The file of simple capture `c`, in the format the `Accept` header asks for.
pub async fn download(
    state: &AppState,
    c: &Capture,
    headers: &HeaderMap,
) -> Result<Response, HttpError> {
    if !c.destination_conf.is_empty() {
        return Err(HttpError::bad_request(vec![ApiError::new(
            codes::UNSUPPORTED,
            format!(
                "download: capture {} wrote its file to its destination_conf ({}) at {}; the \
                 server keeps no copy",
                c.id,
                c.destination_conf,
                c.merged_file.as_deref().unwrap_or("?")
            ),
        )]));
    }
    let Some(f) = files::get(&state.db, &c.id, &clock::now()).await? else {
        return Err(HttpError::not_found(format!(
            "pcap_id: the file of capture {} is no longer kept (look-back files are kept {} \
             after their capture)",
            c.id,
            clock::human(state.config.sample_retention)
        )));
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let pcap = if accept.contains("application/vnd.tcpdump.pcap") {
        true
    } else if accept.contains("pcapng") {
        false
    } else {
        c.format == "pcap"
    };
    let (sealed, mime, ext) = if pcap {
        (&f.pcap, "application/vnd.tcpdump.pcap", "pcap")
    } else {
        (&f.pcapng, "application/x-pcapng", "pcapng")
    };
    let bytes = state
        .hub
        .vault()
        .open_bytes(sealed, &samples_context(&c.id))
        .map_err(HttpError::from)?;
    let disposition = format!("attachment; filename=\"{}.{ext}\"", c.id);
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// The error for a download of a capture that is not simple.
pub fn not_simple(c: &Capture) -> HttpError {
    HttpError::bad_request(vec![ApiError::new(
        codes::UNSUPPORTED,
        format!(
            "download: only simple captures can be downloaded from the API; capture {} is a \
             full capture whose files are in its destination_conf ({}), one per node (see \
             node_results[].file)",
            c.id, c.destination_conf
        ),
    )])
}
