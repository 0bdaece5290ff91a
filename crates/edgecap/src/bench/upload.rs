//! `edgecap bench upload`: the agent's upload path alone. A capture-sized pcapng is generated
//! on the fly by edgecap's writer straight into an `UploadSink` (as the capture engine
//! writes), streamed into a `moto_server` this command starts on 127.0.0.1, and the process's
//! peak RSS (`VmHWM`, reset before each size through `/proc/self/clear_refs`) is reported
//! with the sink's own accounting. The file is never on disk.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_pcap::{Direction, Format, Interface, Section, Writer};
use edgecap_store::{Store, StoreOptions, UploadOptions, UploadSink};

use crate::cli::BenchUploadArgs;
use crate::exit::Failure;
use crate::units::parse_size;

/// The moto_server child; killed on drop, error paths included.
pub(super) struct Moto(Child, pub(super) u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn start_moto() -> Result<Moto, Failure> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Failure::runtime(format!("finding a free port: {e}")))?
        .port();
    let exe = ["/root/.pyenv/shims/moto_server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or("moto_server");
    let child = Command::new(exe)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Failure::runtime(format!(
                "starting moto_server (pip install 'moto[server]'): {e}"
            ))
        })?;
    let moto = Moto(child, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(Failure::runtime("moto_server did not listen within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(moto)
}

/// Creates the bucket (object_store creates none; moto checks no signature).
pub(super) fn create_bucket(port: u16, bucket: &str) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::runtime(format!("creating bucket {bucket}: {e}"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(fail)?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=bench/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(fail)?;
    if resp.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "creating bucket {bucket}: {}",
            resp.lines().next().unwrap_or("no answer")
        )))
    }
}

/// `VmHWM` or `VmRSS` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

pub fn run(a: &BenchUploadArgs) -> Result<(), Failure> {
    let sizes = a
        .sizes
        .iter()
        .map(|s| parse_size(s).map_err(|e| Failure::usage(format!("--sizes: {e}"))))
        .collect::<Result<Vec<u64>, _>>()?;
    eprintln!("starting moto_server on 127.0.0.1 ...");
    let moto = start_moto()?;
    create_bucket(moto.1, "bench")?;
    let url = format!(
        "s3://bench/captures?endpoint=http://127.0.0.1:{}&access-key-id=bench&secret-access-key=bench",
        moto.1
    );
    let store = Store::from_url(&url, &StoreOptions::default(), "destination")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let mut md = String::from(
        "| capture size | part size | sink's bound MiB | sink's peak MiB | process peak RSS MiB \
         (baseline) | MB/s |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    let packet = super::merge::frame(1428);
    for (i, &size) in sizes.iter().enumerate() {
        let opts = UploadOptions::for_size(Some(size));
        // Resets the peak-RSS counter (Linux 4.0+), so VmHWM covers this size only.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let baseline = status_kib("VmRSS:");
        eprintln!("[{}/{}] streaming {size} bytes ...", i + 1, sizes.len());
        let started = Instant::now();
        let key = format!("{i}/edge0.pcapng");
        let sink =
            UploadSink::start(&store, &key, &opts).map_err(|e| Failure::runtime(e.to_string()))?;
        let iface = Interface::raw("edge0/pre-firewall", 65_535);
        let fail = |e: edgecap_pcap::Error| Failure::runtime(format!("writing: {e}"));
        let mut w =
            Writer::new(sink, Format::Pcapng, &Section::default(), &[iface]).map_err(fail)?;
        let mut ts = 1_767_225_600_000_000_000u64;
        while w.bytes_written() < size {
            w.write_packet(0, ts, &packet, packet.len() as u32, Direction::Inbound, 0)
                .map_err(fail)?;
            ts += 1000;
        }
        let report = w
            .finish()
            .map_err(fail)?
            .finish()
            .map_err(|e| Failure::runtime(e.to_string()))?;
        let took = started.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM:");
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        md.push_str(&format!(
            "| {} MB | {} MiB | {:.0} | {:.0} | {:.0} ({:.0}) | {:.0} |\n",
            report.accepted / 1_000_000,
            report.chunk_size >> 20,
            mib(report.memory_bound),
            mib(report.peak_buffered),
            peak as f64 / 1024.0,
            baseline as f64 / 1024.0,
            report.accepted as f64 / 1e6 / took.max(1e-9)
        ));
    }
    drop(moto);
    let md = format!(
        "Command: `{}`; 1428-byte packets written by edgecap's pcapng writer into an \
         UploadSink (5 MiB parts, 4 chunks buffered, 2 in flight) and uploaded to moto_server \
         on 127.0.0.1; nothing on disk.\n\n{md}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    super::publish(&md, a.markdown.as_deref())
}
