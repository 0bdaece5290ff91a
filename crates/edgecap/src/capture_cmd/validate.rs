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
