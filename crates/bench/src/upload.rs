//! `edgecap bench upload`: the agent's upload path alone. A capture-sized pcapng is generated
//! on the fly by edgecap's writer straight into an `UploadSink` (as the capture engine
//! writes), streamed into a `moto_server` this command starts on 127.0.0.1, and the process's
//! peak RSS (`VmHWM`, reset before each size through `/proc/self/clear_refs`) is reported
//! with the sink's own accounting. The file is never on disk.

use std::time::Instant;

use edgecap_pcap::{Direction, Format, Interface, Section, Writer};
use edgecap_store::{Store, StoreOptions, UploadOptions, UploadSink};
use edgecap_testkit::http::try_moto_bucket;
use edgecap_testkit::servers::Server;
use edgecap_units::parse_size;

use crate::cli::BenchUploadArgs;
use crate::exit::Failure;

/// A `moto_server` on 127.0.0.1 with bucket `bucket` (edgecap-testkit's, as the tests'),
/// killed on drop, error paths included.
pub(crate) fn start_moto(bucket: &str) -> Result<Server, Failure> {
    let moto = Server::try_moto()
        .map_err(|e| Failure::runtime(format!("{e} (pip install 'moto[server]')")))?;
    try_moto_bucket(moto.port, bucket).map_err(Failure::runtime)?;
    Ok(moto)
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
    let moto = start_moto("bench")?;
    let url = format!(
        "s3://bench/captures?endpoint=http://127.0.0.1:{}&access-key-id=bench&secret-access-key=bench",
        moto.port
    );
    let store = Store::from_url(&url, &StoreOptions::operator(), "destination")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let mut md = String::from(
        "| capture size | part size | sink's bound MiB | sink's peak MiB | process peak RSS MiB \
         (baseline) | MB/s |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    let packet = crate::merge::frame(1428);
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
    crate::publish(&md, a.markdown.as_deref())
}
