//! The fleet commands: create a capture and follow it with per-node progress bars, list,
//! show, stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edgecap_model::Capture;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Conn, render};
use crate::capture_cmd::{CaptureArgs, FleetArgs, LookBack};
use crate::exit::Failure;
use crate::out::{self, outln};
use crate::units::{parse_count, parse_duration, parse_size};

/// Fleet captures run 30 s unless told otherwise (Cloudflare's API requires a time limit).
const DEFAULT_TIME: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(500);

/// `edgecap capture --server ...`: create, then follow until every node has finished.
pub fn capture(conn: &Conn, a: &CaptureArgs, f: &FleetArgs) -> Result<(), Failure> {
    if f.estimate {
        return estimate(conn, a, f);
    }
    let body = request_body(a, f, conn.destination.clone())?;
    let created: Capture = conn
        .call(Method::POST, "pcaps", Some(&body))?
        .ok_or_else(|| Failure::runtime("the server created a capture but returned nothing"))?;
    if f.detach {
        if a.json {
            out::json(&created)?;
        } else {
            outln!("{}", created.id);
        }
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Failure::runtime(format!("installing signal handler: {e}")))?;
    }
    let bars = render::Bars::new(a.quiet || a.json);
    let mut stop_sent = false;
    let started = Instant::now();
    let last = loop {
        let c: Capture = conn
            .call(Method::GET, &format!("pcaps/{}", created.id), None)?
            .ok_or_else(|| Failure::runtime("capture vanished from the server"))?;
        bars.update(&c, started.elapsed());
        if c.status.is_terminal() {
            break c;
        }
        if stop.load(Ordering::Relaxed) && !stop_sent {
            // First Ctrl-C: stop the capture on every node and wait for their results.
            let _: Option<Value> =
                conn.call(Method::PUT, &format!("pcaps/{}/stop", created.id), None)?;
            stop_sent = true;
        }
        std::thread::sleep(POLL);
    };
    bars.finish();
    if a.json {
        out::json(&last)?;
    } else {
        render::capture_detail(&last);
    }
    if last.status == edgecap_model::Status::Failed {
        return Err(Failure::runtime(format!(
            "capture {} failed: {}",
            last.id,
            last.error_message.as_deref().unwrap_or("no reason given")
        )));
    }
    Ok(())
}

/// `edgecap capture --server ... --estimate`: the create body sent to `pcaps/estimate`; the
/// answer printed (`--json`: as the server gave it). Nothing starts. No destination is needed.
fn estimate(conn: &Conn, a: &CaptureArgs, f: &FleetArgs) -> Result<(), Failure> {
    let no_dest = f.destination.is_none() && conn.destination.is_none();
    let mut body = request_body(a, f, conn.destination.clone().or(Some(String::new())))?;
    if no_dest && let Some(b) = body.as_object_mut() {
        b.remove("destination_conf");
    }
    let e: Value = conn
        .call(Method::POST, "pcaps/estimate", Some(&body))?
        .ok_or_else(|| Failure::runtime("the server returned no estimate"))?;
    if a.json {
        out::json(&e)?;
    } else {
        render::estimate(&e);
    }
    Ok(())
}

/// The create body from CLI flags: Cloudflare's fields plus edgecap's extensions.
pub(crate) fn request_body(
    a: &CaptureArgs,
    f: &FleetArgs,
    default_dest: Option<String>,
) -> Result<Value, Failure> {
    let bad = |opt: &str, why: String| Failure::usage(format!("{opt}: {why}"));
    let mut body = Map::new();
    body.insert("type".into(), json!("full"));
    body.insert("system".into(), json!("magic-transit"));
    let time = a
        .time
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| bad("--time", e))?;
    body.insert(
        "time_limit".into(),
        json!(time.unwrap_or(DEFAULT_TIME).as_secs_f64()),
    );
    if let Some(p) = &a.packets {
        body.insert(
            "packet_limit".into(),
            json!(parse_count(p).map_err(|e| bad("--packets", e))?),
        );
    }
    if let Some(b) = &a.bytes {
        body.insert(
            "byte_limit".into(),
            json!(parse_size(b).map_err(|e| bad("--bytes", e))?),
        );
    }
    filters(a, &mut body);
    selection(f, true, &mut body)?;
    let dest = f.destination.clone().or(default_dest).ok_or_else(|| {
        bad(
            "--destination",
            "where should the nodes write? e.g. file:///var/lib/edgecap/captures (or set \
             destination in the client config)"
                .into(),
        )
    })?;
    body.insert("destination_conf".into(), json!(dest));
    if f.merge {
        body.insert("merge".into(), json!(true));
    }
    points(a, &mut body);
    if let Some(s) = &a.snaplen {
        body.insert(
            "snaplen".into(),
            json!(parse_count(s).map_err(|e| bad("--snaplen", e))?),
        );
    }
    if let Some(s) = &a.sample {
        let n = parse_count(s).map_err(|e| bad("--sample", e))?;
        body.insert("sample_rate".into(), json!(1.0 / n as f64));
    }
    body.insert("format".into(), json!(a.format));
    Ok(Value::Object(body))
}

/// The create body of a look-back capture (`type: simple`): the window and packet limit
/// from [`LookBack`], the filter, selection, points and format as a full capture sends them;
/// a destination only when `--destination` names one (the client config's default is for
/// full captures: a look-back file is downloaded).
pub(crate) fn simple_body(a: &CaptureArgs, lb: &LookBack) -> Result<Value, Failure> {
    let mut body = Map::new();
    body.insert("type".into(), json!("simple"));
    body.insert("system".into(), json!("magic-transit"));
    body.insert("time_limit".into(), json!(lb.seconds));
    body.insert("packet_limit".into(), json!(lb.packet_limit));
    if let Some(t) = &lb.offset_time {
        body.insert("offset_time".into(), json!(t));
    }
    filters(a, &mut body);
    selection(&a.fleet, false, &mut body)?;
    if let Some(d) = &a.fleet.destination {
        body.insert("destination_conf".into(), json!(d));
    }
    points(a, &mut body);
    body.insert("format".into(), json!(a.format));
    Ok(Value::Object(body))
}

/// `filter_v1` from --src/--dst/--sport/--dport/--proto, and `filter` from --filter.
fn filters(a: &CaptureArgs, body: &mut Map<String, Value>) {
    let mut filter = Map::new();
    for (field, values) in [
        ("source_address", &a.src),
        ("destination_address", &a.dst),
        ("source_port", &a.sport),
        ("destination_port", &a.dport),
        ("protocol", &a.proto),
    ] {
        let items: Vec<Value> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|v| json!(v.trim()))
            .collect();
        match items.len() {
            0 => {}
            1 => {
                filter.insert(field.into(), items[0].clone());
            }
            _ => {
                filter.insert(field.into(), Value::Array(items));
            }
        }
    }
    body.insert("filter_v1".into(), Value::Object(filter));
    if let Some(e) = &a.filter {
        body.insert("filter".into(), json!(e));
    }
}

/// `colo_name` or `nodes`; one of them is needed when `required` (a full capture).
fn selection(f: &FleetArgs, required: bool, body: &mut Map<String, Value>) -> Result<(), Failure> {
    let bad = |opt: &str, why: &str| Failure::usage(format!("{opt}: {why}"));
    match (&f.colo, f.nodes.is_empty()) {
        (Some(c), true) => {
            body.insert("colo_name".into(), json!(c));
        }
        (None, false) => {
            let nodes: Vec<&str> = f
                .nodes
                .iter()
                .flat_map(|n| n.split(','))
                .map(str::trim)
                .collect();
            body.insert("nodes".into(), json!(nodes));
        }
        (Some(_), false) => return Err(bad("--colo", "give --colo or --nodes, not both")),
        (None, true) if required => {
            return Err(bad(
                "--nodes",
                "say which nodes: --nodes NAME|key=value,... or --colo SITE",
            ));
        }
        (None, true) => {}
    }
    Ok(())
}

fn points(a: &CaptureArgs, body: &mut Map<String, Value>) {
    let points: Vec<&str> = a.point.split(',').map(str::trim).collect();
    body.insert("points".into(), json!(points));
}

/// `edgecap ls`.
pub fn ls(conn: &Conn, json_out: bool) -> Result<(), Failure> {
    let list: Vec<Capture> = conn.call(Method::GET, "pcaps", None)?.unwrap_or_default();
    if json_out {
        out::json(&list)?;
    } else {
        render::capture_table(&list);
    }
    Ok(())
}

/// `edgecap status ID`.
pub fn status(conn: &Conn, id: &str, json_out: bool) -> Result<(), Failure> {
    check_id(id)?;
    let c: Capture = conn
        .call(Method::GET, &format!("pcaps/{id}"), None)?
        .ok_or_else(|| Failure::runtime("empty answer"))?;
    if json_out {
        out::json(&c)?;
    } else {
        render::capture_detail(&c);
    }
    Ok(())
}

/// `edgecap stop ID`; with `--json`, the capture as it stands after the stop request (the API
/// answers a stop with no body, so it is read back).
pub fn stop(conn: &Conn, id: &str, json_out: bool) -> Result<(), Failure> {
    check_id(id)?;
    let _: Option<Value> = conn.call(Method::PUT, &format!("pcaps/{id}/stop"), None)?;
    if json_out {
        let c: Capture = conn
            .call(Method::GET, &format!("pcaps/{id}"), None)?
            .ok_or_else(|| Failure::runtime("empty answer"))?;
        out::json(&c)?;
    } else {
        eprintln!("stop requested for {id}");
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), Failure> {
    if edgecap_model::ids::is_id(id) {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "ID: {id:?} is not a 32-hex-digit capture id"
        )))
    }
}

/// `edgecap capture --look-back ...`: create the simple capture, say on standard error which
/// nodes answered and which are missing, then download its file into `-w` (unless the
/// server wrote it to `--destination`). `-w FILE` is opened before anything is asked, so an
/// unwritable path creates nothing; a failed capture leaves no file behind.
pub fn look_back(conn: &Conn, a: &CaptureArgs, lb: &LookBack) -> Result<(), Failure> {
    let body = simple_body(a, lb)?;
    let mut sink = match a.write.as_deref() {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Sink::Stdout),
        Some(p) => Some(Sink::File(
            std::fs::File::create(p)
                .map_err(|e| Failure::usage(format!("-w: cannot write {}: {e}", p.display())))?,
            p.to_owned(),
        )),
    };
    let result = look_back_into(conn, a, &body, &mut sink);
    if result.is_err()
        && let Some(Sink::File(_, p)) = &sink
    {
        let _ = std::fs::remove_file(p);
    }
    result
}

enum Sink {
    Stdout,
    File(std::fs::File, std::path::PathBuf),
}

fn look_back_into(
    conn: &Conn,
    a: &CaptureArgs,
    body: &Value,
    sink: &mut Option<Sink>,
) -> Result<(), Failure> {
    let created: Capture = conn
        .call(Method::POST, "pcaps", Some(body))
        .map_err(flag_names)?
        .ok_or_else(|| Failure::runtime("the server created a capture but returned nothing"))?;
    let to_stdout = matches!(sink, Some(Sink::Stdout));
    if a.json {
        let v = serde_json::to_string_pretty(&created)
            .map_err(|e| Failure::runtime(format!("encoding JSON: {e}")))?;
        if to_stdout {
            eprintln!("{v}");
        } else {
            outln!("{v}");
        }
    } else if !a.quiet {
        eprint!("{}", render::look_back_report(&created));
    }
    if created.status == edgecap_model::Status::Failed {
        return Err(Failure::runtime(format!(
            "look-back capture {} failed: {}",
            created.id,
            created
                .error_message
                .as_deref()
                .unwrap_or("no node answered")
        )));
    }
    let Some(sink) = sink else {
        if !a.quiet && !a.json {
            eprintln!(
                "written by the server to {}",
                created
                    .merged_file
                    .as_deref()
                    .unwrap_or(&created.destination_conf)
            );
        }
        return Ok(());
    };
    let bytes = conn.get_file(
        &format!("pcaps/{}/download", created.id),
        Some(accept(&a.format)),
    )?;
    write_file(sink, &bytes)?;
    if !a.quiet
        && !a.json
        && let Sink::File(_, p) = sink
    {
        eprintln!("wrote {} ({} bytes)", p.display(), bytes.len());
    }
    Ok(())
}

/// The Accept header for a `--format`: Cloudflare's SDKs' type for pcap, else pcapng.
fn accept(format: &str) -> &'static str {
    if format == "pcap" {
        "application/vnd.tcpdump.pcap"
    } else {
        "application/x-pcapng"
    }
}

fn write_file(sink: &mut Sink, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    match sink {
        Sink::Stdout => {
            let mut out = std::io::stdout().lock();
            match out.write_all(bytes).and_then(|()| out.flush()) {
                // The reader took what it wanted (`| head -c`), as with a local capture.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map_err(|e| Failure::runtime(format!("writing to standard output: {e}"))),
            }
        }
        Sink::File(f, p) => f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| Failure::runtime(format!("writing {}: {e}", p.display()))),
    }
}

/// A refusal of a look-back request, each error's field named by the flag the user typed
/// (`--look-back (time_limit): ...`). The server's message is `server refused (STATUS): ` and
/// its errors joined by `; `, each starting with its field.
fn flag_names(mut f: Failure) -> Failure {
    const FLAGS: &[(&str, &str)] = &[
        ("time_limit", "--look-back"),
        ("offset_time", "--at"),
        ("packet_limit", "--packets"),
        ("destination_conf", "--destination"),
        ("filter_v1.source_address", "--src"),
        ("filter_v1.destination_address", "--dst"),
        ("filter_v1.source_port", "--sport"),
        ("filter_v1.destination_port", "--dport"),
        ("filter_v1.protocol", "--proto"),
        ("filter", "--filter"),
        ("points", "--point"),
        ("format", "--format"),
        ("nodes", "--nodes"),
        ("colo_name", "--colo"),
    ];
    let Some((head, errors)) = f.message.split_once("): ") else {
        return f;
    };
    let named: Vec<String> = errors
        .split("; ")
        .map(|e| {
            FLAGS
                .iter()
                .find_map(|(field, flag)| {
                    let rest = e.strip_prefix(field)?.strip_prefix(": ")?;
                    Some(format!("{flag} ({field}): {rest}"))
                })
                .unwrap_or_else(|| e.to_owned())
        })
        .collect();
    f.message = format!("{head}): {}", named.join("; "));
    f
}

/// `edgecap download ID -w FILE`: a simple capture's file, pcap or pcapng per `--format`
/// (default: the capture's own). The file is written only once the server has sent it.
pub fn download(
    conn: &Conn,
    id: &str,
    write: &std::path::Path,
    format: Option<&str>,
    quiet: bool,
) -> Result<(), Failure> {
    check_id(id)?;
    let bytes = conn.get_file(&format!("pcaps/{id}/download"), format.map(accept))?;
    let mut sink = if write.as_os_str() == "-" {
        Sink::Stdout
    } else {
        Sink::File(
            std::fs::File::create(write).map_err(|e| {
                Failure::usage(format!("-w: cannot write {}: {e}", write.display()))
            })?,
            write.to_owned(),
        )
    };
    write_file(&mut sink, &bytes)?;
    if !quiet && let Sink::File(_, p) = &sink {
        eprintln!("wrote {} ({} bytes)", p.display(), bytes.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_back_refusal_names_the_flags_typed() {
        let f = flag_names(Failure::usage(
            "server refused (400): time_limit: 600 is outside 1-300; filter_v1.protocol: \
             \"x\" is not a protocol; filter: at character 1: bad; not a field: as is",
        ));
        assert_eq!(f.code, 2);
        assert_eq!(
            f.message,
            "server refused (400): --look-back (time_limit): 600 is outside 1-300; --proto \
             (filter_v1.protocol): \"x\" is not a protocol; --filter (filter): at character 1: \
             bad; not a field: as is"
        );
        let f = flag_names(Failure::runtime("cannot reach http://x: refused"));
        assert_eq!(f.message, "cannot reach http://x: refused");
    }
}
