//! `edgecap capture`'s flags -> the engine's spec. Each flag is parsed here and its errors name
//! it; the request rules (filter composition, refusals per point, snaplen, format) are
//! `edgecap_capture::Request`'s, the same builder the agent's plan uses.

use std::path::Path;

use edgecap_capture::{
    CaptureSpec, Config, GroupChoice, Limits, PointDef, Request, RequestError, RequestField,
};
use edgecap_filter::StructuredFilter;

use super::CaptureArgs;
use crate::exit::Failure;
use crate::units::{parse_count, parse_duration, parse_size};

/// Turns raw flags into a capture spec. Every error names the option and the reason.
pub fn validate(a: &CaptureArgs) -> Result<CaptureSpec, Failure> {
    let config = load_config(a.config.as_deref())?;
    let points = points(a, &config)?;
    let structured = StructuredFilter::from_cli(&a.src, &a.dst, &a.sport, &a.dport, &a.proto)
        .map_err(|e| Failure::usage(format!("{}: {e}", structured_flag(e.field()))))?;
    let request = Request {
        id: new_id(),
        node: node(a, &config)?,
        structured: &structured,
        expression: a.filter.as_deref(),
        points,
        limits: limits(a)?,
        snaplen: optional(a.snaplen.as_deref(), "--snaplen", parse_count)?,
        sample_one_in: sample(a)?,
        format: &a.format,
        boundary: None,
    };
    let group = group(a)?;
    let socket_buffer = optional(a.buffer.as_deref(), "--buffer", parse_size)?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut spec = request.build().map_err(request_error)?;
    spec.group = group;
    spec.socket_buffer = socket_buffer;
    spec.live_output = a.write.as_deref().is_some_and(|w| w.as_os_str() == "-");
    Ok(spec)
}

fn bad(opt: &str, why: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("{opt}: {why}"))
}

/// An optional flag through its parser, the error naming the flag.
fn optional<T>(
    value: Option<&str>,
    opt: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Failure> {
    value.map(parse).transpose().map_err(|e| bad(opt, e))
}

/// `--point`, comma-separated, resolved against the configuration and this host's devices.
fn points(a: &CaptureArgs, config: &Config) -> Result<Vec<PointDef>, Failure> {
    let names: Vec<String> = a.point.split(',').map(|p| p.trim().to_owned()).collect();
    let devices = edgecap_capture::points::local_devices();
    edgecap_capture::points::resolve(&names, config, &devices).map_err(|e| bad("--point", e))
}

fn limits(a: &CaptureArgs) -> Result<Limits, Failure> {
    Ok(Limits {
        time: optional(a.time.as_deref(), "--time", parse_duration)?,
        packets: optional(a.packets.as_deref(), "--packets", parse_count)?,
        bytes: optional(a.bytes.as_deref(), "--bytes", parse_size)?,
    })
}

/// `--sample N`: one packet in N (1 keeps every packet).
fn sample(a: &CaptureArgs) -> Result<Option<u32>, Failure> {
    let Some(n) = optional(a.sample.as_deref(), "--sample", parse_count)? else {
        return Ok(None);
    };
    let n = u32::try_from(n).map_err(|_| bad("--sample", format!("{n} is above {}", u32::MAX)))?;
    Ok(Some(n))
}

fn group(a: &CaptureArgs) -> Result<GroupChoice, Failure> {
    let Some(s) = a.group.as_deref() else {
        return Ok(GroupChoice::Auto);
    };
    let n: u16 = s.trim().parse().map_err(|_| {
        bad(
            "--group",
            format!("{s:?} is not an NFLOG group number (0-65535)"),
        )
    })?;
    Ok(GroupChoice::Fixed(n))
}

/// `--node`, else the configuration's node name, else the host name.
fn node(a: &CaptureArgs, config: &Config) -> Result<String, Failure> {
    match &a.node {
        Some(n) if n.trim().is_empty() => Err(bad("--node", "is empty")),
        Some(n) => Ok(n.clone()),
        None => Ok(config.node.clone().unwrap_or_else(hostname)),
    }
}

/// The configuration named by `--config` (which must exist), else the default file if present.
fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    let (path, required) = match path {
        Some(p) => (p, true),
        None => (Path::new(edgecap_capture::config::DEFAULT_PATH), false),
    };
    match Config::load(path) {
        Ok(Some(c)) => Ok(c),
        Ok(None) if required => Err(bad(
            "--config",
            format!("{} does not exist", path.display()),
        )),
        Ok(None) => Ok(Config::default()),
        Err(e) => Err(bad("--config", e)),
    }
}

/// A request the rules refuse, named by the flag the user typed.
fn request_error(e: RequestError) -> Failure {
    let opt = match e.field() {
        RequestField::Structured(field) => structured_flag(field),
        RequestField::Expression | RequestField::Boundary => "--filter",
        RequestField::Snaplen => "--snaplen",
        RequestField::Format => "--format",
    };
    bad(opt, e)
}

/// Maps a structured filter field to the option a CLI user typed.
fn structured_flag(field: &str) -> &'static str {
    match field {
        "source_address" => "--src",
        "destination_address" => "--dst",
        "source_port" => "--sport",
        "destination_port" => "--dport",
        "protocol" => "--proto",
        _ => "filter",
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// 32 hex digits, like the capture ids of the Cloudflare API.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A look-back capture's flags, checked (`--look-back`, `--at`, `--packets`): the create
/// request's `time_limit`, `offset_time` and `packet_limit`. Ranges against the account's
/// maxima and the rings' reach are the server's rules (`edgecap_model::validate_create`).
#[derive(Debug, Clone, PartialEq)]
pub struct LookBack {
    /// Seconds of traffic before `offset_time`.
    pub seconds: f64,
    /// End of the window (RFC 3339 UTC); None: now, as the server takes it.
    pub offset_time: Option<String>,
    pub packet_limit: u64,
}

/// `--look-back` and `--at` checked against every other flag, `now` in Unix seconds (for a
/// relative `--at`). None: not a look-back capture (then `--at` is refused). Flags a look-back
/// capture would ignore are refused naming the flag; `-w` is required unless `--destination`
/// says where the server writes the file.
pub fn look_back(a: &CaptureArgs, now: f64) -> Result<Option<LookBack>, Failure> {
    let f = &a.fleet;
    let Some(window) = f.look_back.as_deref() else {
        if f.at.is_some() {
            return Err(bad(
                "--at",
                "ends a look-back window: give --look-back DURATION too",
            ));
        }
        return Ok(None);
    };
    let refused = [
        (
            a.time.is_some(),
            "--time",
            "the window is --look-back (and --at)",
        ),
        (
            a.bytes.is_some(),
            "--bytes",
            "a look-back capture is bounded by --packets",
        ),
        (
            a.snaplen.is_some(),
            "--snaplen",
            "the rings keep the first 160 bytes of each packet",
        ),
        (
            a.sample.is_some(),
            "--sample",
            "the rings are sampled already; each interface states its rate",
        ),
        (f.merge, "--merge", "a look-back capture is one merged file"),
        (f.detach, "--detach", "a look-back capture finishes at once"),
        (
            f.estimate,
            "--estimate",
            "a look-back capture reads the rings and starts nothing",
        ),
        (a.config.is_some(), "--config", LOCAL_ONLY),
        (a.group.is_some(), "--group", LOCAL_ONLY),
        (a.buffer.is_some(), "--buffer", LOCAL_ONLY),
        (a.node.is_some(), "--node", LOCAL_ONLY),
    ];
    if let Some((_, opt, why)) = refused.into_iter().find(|(given, ..)| *given) {
        return Err(bad(opt, format!("does not apply to --look-back: {why}")));
    }
    match (&a.write, &f.destination) {
        (None, None) => {
            return Err(bad(
                "-w",
                "give the file for the look-back capture (or - for standard output), or \
                 --destination for the server to write it there",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(bad(
                "-w",
                "with --destination the server writes the file there and keeps no copy; give \
                 one of them",
            ));
        }
        _ => {}
    }
    let seconds = parse_duration(window)
        .map_err(|e| bad("--look-back", e))?
        .as_secs_f64();
    if seconds <= 0.0 {
        return Err(bad("--look-back", "must be longer than zero"));
    }
    let offset_time =
        f.at.as_deref()
            .map(|v| at(v, now).map(edgecap_model::ids::rfc3339))
            .transpose()?;
    let packet_limit = optional(a.packets.as_deref(), "--packets", parse_count)?
        .unwrap_or(edgecap_model::AccountLimits::default().max_packet_limit);
    Ok(Some(LookBack {
        seconds,
        offset_time,
        packet_limit,
    }))
}

const LOCAL_ONLY: &str = "it applies to a local capture only; a look-back capture reads the \
                          nodes' rings";

/// `--at`: an RFC 3339 UTC time, `now`, or a duration before `now` (`10m`, `-10m`), as
/// `edgecap traffic --since` takes them.
fn at(v: &str, now: f64) -> Result<f64, Failure> {
    let v = v.trim();
    if v == "now" {
        return Ok(now);
    }
    if let Ok(d) = parse_duration(v.strip_prefix('-').unwrap_or(v)) {
        return Ok(now - d.as_secs_f64());
    }
    edgecap_model::ids::parse_rfc3339(v).ok_or_else(|| {
        bad(
            "--at",
            format!(
                "{v:?} is neither an RFC 3339 UTC time (2026-11-25T07:30:00Z) nor a duration \
                 before now (10m)"
            ),
        )
    })
}
