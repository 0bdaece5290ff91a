//! `edgecap merge -w OUT [--format pcapng|pcap] IN...`: per-node files into one time-ordered
//! file, with one interface per node and capture point (`edgecap_pcap::merge`).
//!
//! Inputs and output are local paths or object URLs (`s3://bucket/dir/file.pcapng?region=..`,
//! `gs://..`, `azure://container/..?account=..`, `r2://..?account-id=..`, `file:///..`), read
//! and written streaming (`edgecap_store`): memory is bounded by the inputs' buffers and the
//! upload's parts, never by the files. Credentials come from each cloud's environment
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`) or, for S3 and R2, from the URL.
//!
//! Every input is opened and recognised before the output is created; a local output is
//! written beside its final name and renamed when complete, so a failed merge leaves nothing.
//! Exit status: 0 success; 2 bad input (an option, an unreadable or non-capture file, a bad
//! URL), naming it; 1 a failure while merging (a network error, a file cut short).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use edgecap_pcap::Format;
use edgecap_pcap::merge::{MergeError, MergeInput, MergeOptions, MergeProgress, MergeSummary};
use edgecap_store::{ObjectReader, Store, StoreError, StoreOptions, UploadOptions, UploadSink};

use crate::exit::Failure;

/// Bytes read from each input at a time: few system calls, and 16 inputs stay within 4 MiB.
const INPUT_BUFFER: usize = 256 << 10;

/// Arguments of `edgecap merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Input files (pcap or pcapng from any tool): paths or object URLs.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<String>,
    /// Output: a path, - for standard output, or an object URL.
    #[arg(short = 'w', long = "write", value_name = "OUT", required = true)]
    pub write: String,
    /// Output format: pcapng (one interface per node and point) or pcap (needs one linktype).
    #[arg(long, default_value = "pcapng")]
    pub format: String,
    #[arg(long, help = crate::out::JSON_BESIDE_DATA_HELP)]
    pub json: bool,
    #[arg(long, short, help = crate::out::QUIET_HELP)]
    pub quiet: bool,
}

enum Source {
    File(File),
    Object(ObjectReader),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::File(f) => f.read(buf),
            Source::Object(o) => o.read(buf),
        }
    }
}

enum Sink {
    /// The temporary file and the name it gets when complete.
    File(File, PathBuf, PathBuf),
    Stdout(io::Stdout),
    /// A device or FIFO, written in place.
    Device(File),
    Upload(Box<UploadSink>, String),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f, ..) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
            Sink::Device(f) => f.write(buf),
            Sink::Upload(u, _) => u.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f, ..) => f.flush(),
            Sink::Stdout(s) => s.flush(),
            Sink::Device(f) => f.flush(),
            Sink::Upload(u, _) => u.flush(),
        }
    }
}

/// Removes a temporary output unless the merge completed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn is_url(s: &str) -> bool {
    s.contains("://")
}

fn store_failure(what: &str, e: StoreError) -> Failure {
    if e.is_bad_input() {
        Failure::usage(format!("{what}: {e}"))
    } else {
        Failure::runtime(format!("{what}: {e}"))
    }
}

/// The input's name in the merged file: the file stem (`edge0` of `.../edge0.pcapng`).
fn stem(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let last = last.split('?').next().unwrap_or(last);
    Path::new(last)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| last.to_owned())
}

fn open_input(
    arg: &str,
    opts: &StoreOptions,
) -> Result<(MergeInput<BufReader<Source>>, u64), Failure> {
    let (source, size) = if is_url(arg) {
        let (store, key) = Store::open_object(arg, opts, &format!("IN {}", redact(arg)))
            .map_err(|e| store_failure("IN", e))?;
        let r = ObjectReader::open(&store, &key).map_err(|e| store_failure("IN", e))?;
        let size = r.size();
        (Source::Object(r), size)
    } else {
        let f = File::open(arg).map_err(|e| Failure::usage(format!("IN {arg}: {e}")))?;
        let meta = f
            .metadata()
            .map_err(|e| Failure::usage(format!("IN {arg}: {e}")))?;
        if meta.is_dir() {
            return Err(Failure::usage(format!("IN {arg}: is a directory")));
        }
        (Source::File(f), meta.len())
    };
    let reader = BufReader::with_capacity(INPUT_BUFFER, source);
    let input = MergeInput::new(stem(arg), reader).map_err(|e| match e {
        MergeError::Read { source, .. } if !source.is_io() => {
            Failure::usage(format!("IN {}: {source}", redact(arg)))
        }
        other => Failure::runtime(format!("IN {}: {other}", redact(arg))),
    })?;
    Ok((input, size))
}

/// A URL without its query (which may hold keys), for messages.
fn redact(s: &str) -> &str {
    s.split('?').next().unwrap_or(s)
}

fn open_output(
    out: &str,
    inputs: &[String],
    total_in: u64,
    opts: &StoreOptions,
) -> Result<Sink, Failure> {
    if out == "-" {
        return Ok(Sink::Stdout(io::stdout()));
    }
    if is_url(out) {
        let (store, key) =
            Store::open_object(out, opts, "-w").map_err(|e| store_failure("-w", e))?;
        // pcap records grow by 16 bytes as pcapng blocks: twice the input bounds the output.
        let up = UploadOptions::for_size(Some(total_in.saturating_mul(2).saturating_add(1 << 20)));
        let sink = UploadSink::start(&store, &key, &up).map_err(|e| store_failure("-w", e))?;
        return Ok(Sink::Upload(Box::new(sink), store.describe_key(&key)));
    }
    let path = PathBuf::from(out);
    let same = |i: &String| {
        !is_url(i)
            && match (std::fs::canonicalize(i), std::fs::canonicalize(&path)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
    };
    if inputs.iter().any(same) {
        return Err(Failure::usage(format!(
            "-w {out}: is also an input; write the merged file elsewhere"
        )));
    }
    // A device or FIFO (/dev/null, a pipe to tshark) is written in place: renaming a
    // temporary file over it would replace it.
    if let Ok(meta) = std::fs::metadata(&path)
        && !meta.is_file()
    {
        if meta.is_dir() {
            return Err(Failure::usage(format!("-w {out}: is a directory")));
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Failure::usage(format!("-w {out}: {e}")))?;
        return Ok(Sink::Device(f));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Failure::usage(format!(
            "-w {out}: directory {} does not exist",
            dir.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Failure::usage(format!("-w {out}: names no file")))?;
    let tmp = dir.join(format!(".{name}.merge-{}", std::process::id()));
    let f = File::create(&tmp).map_err(|e| Failure::usage(format!("-w {out}: {e}")))?;
    Ok(Sink::File(f, tmp, path))
}

pub fn run(a: &MergeArgs) -> Result<(), Failure> {
    let format: Format = a
        .format
        .parse()
        .map_err(|e| Failure::usage(format!("--format: {e}")))?;
    // The URLs are the operator's own, on their own machine: no endpoint policy, and the
    // cloud's standard credential chain works with a custom endpoint.
    let opts = StoreOptions::operator();
    let mut inputs = Vec::with_capacity(a.inputs.len());
    let mut total_in = 0u64;
    for arg in &a.inputs {
        let (input, size) = open_input(arg, &opts)?;
        total_in += size;
        inputs.push(input);
    }
    let sink = open_output(&a.write, &a.inputs, total_in, &opts)?;
    let mut guard = TempGuard(match &sink {
        Sink::File(_, tmp, _) => Some(tmp.clone()),
        _ => None,
    });

    let bar = progress_bar(a.quiet, total_in);
    let started = Instant::now();
    let mopts = MergeOptions {
        format,
        section: None,
    };
    let merge_error = |e| match e {
        MergeError::MixedLinktypes { .. } => Failure::usage(format!("--format pcap: {e}")),
        other => Failure::runtime(format!("merge: {other}")),
    };
    let merger = edgecap_pcap::merge::Merger::open(inputs, sink, &mopts).map_err(merge_error)?;
    if let Some(note) = merger.libpcap_note() {
        // Said before the work starts, so a user who needs tcpdump can stop and pick pcap.
        bar.suspend(|| {
            eprintln!(
                "edgecap: warning: tcpdump will not read the merged pcapng ({note}); tshark \
                 and Wireshark will, and --format pcap writes a file tcpdump reads"
            )
        });
    }
    let result = merger.run(|p: &MergeProgress| {
        bar.set_position(p.bytes_in);
        bar.set_message(format!("{} packets", p.packets));
    });
    bar.finish_and_clear();
    let (summary, sink) = result.map_err(merge_error)?;
    let output = match sink {
        Sink::File(f, tmp, path) => {
            // No fsync, like tcpdump and mergecap: the rename makes the file appear whole to
            // readers; durability across a power loss is the file system's business.
            drop(f);
            std::fs::rename(&tmp, &path)
                .map_err(|e| Failure::runtime(format!("-w {}: {e}", path.display())))?;
            guard.0 = None;
            path.display().to_string()
        }
        Sink::Device(_) => a.write.clone(),
        Sink::Stdout(mut s) => {
            s.flush()
                .map_err(|e| Failure::runtime(format!("-w -: {e}")))?;
            "-".to_owned()
        }
        Sink::Upload(u, name) => {
            u.finish()
                .map_err(|e| Failure::runtime(format!("-w: {e}")))?;
            name
        }
    };
    report(&summary, a, &output, started.elapsed());
    Ok(())
}

/// The summary: `--json` on standard output (standard error when `-w -` streams the merged
/// file there), else a line on standard error unless `-q`.
fn report(s: &MergeSummary, a: &MergeArgs, output: &str, took: Duration) {
    if a.json {
        let inputs: Vec<serde_json::Value> = a
            .inputs
            .iter()
            .zip(&s.per_input)
            .map(|(i, n)| serde_json::json!({ "input": redact(i), "packets": n }))
            .collect();
        let v = serde_json::json!({
            "output": output,
            "format": a.format.to_ascii_lowercase(),
            "packets": s.packets,
            "bytes_in": s.bytes_in,
            "bytes_out": s.bytes_out,
            "inputs": inputs,
            "interfaces": s.interfaces.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
            "seconds": took.as_secs_f64(),
            "libpcap_note": s.libpcap_note,
        });
        if a.write == "-" {
            let _ = writeln!(io::stderr().lock(), "{v}");
        } else {
            crate::out::outln!("{v}");
        }
        return;
    }
    if a.quiet {
        return;
    }
    let _ = writeln!(
        io::stderr().lock(),
        "merged {} files ({} packets, {} interfaces) into {output} ({} bytes) in {:.2}s",
        a.inputs.len(),
        s.packets,
        s.interfaces.len(),
        s.bytes_out,
        took.as_secs_f64()
    );
}

fn progress_bar(quiet: bool, total: u64) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    // Draws only when stderr is a terminal.
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_named_after_their_stem() {
        assert_eq!(stem("/srv/x/edge0.pcapng"), "edge0");
        assert_eq!(
            stem("s3://b/id/edge-fra-1.pcap?region=us-east-1"),
            "edge-fra-1"
        );
        assert_eq!(stem("capture"), "capture");
        assert_eq!(redact("r2://b/k?secret-access-key=S"), "r2://b/k");
    }
}
