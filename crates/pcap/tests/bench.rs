//! Throughput of the writer's buffering strategies. Ignored by default and never asserts a
//! time; run with
//! `cargo test --release -p edgecap-pcap --test bench -- --ignored --nocapture`.
//!
//! Compares the writer's own 1 MiB buffer with handing every record to a `BufWriter` as one
//! vectored write, over a null sink (pure CPU cost) and over `/dev/null` (adds the syscalls).
//!
//! Release build on the 2-vCPU development machine (Mpps, 92-byte / 1428-byte packets; runs
//! vary by about 15%):
//!
//! | strategy                                  | pcapng 92 | pcapng 1428 | pcap 92 | pcap 1428 |
//! |-------------------------------------------|-----------|-------------|---------|-----------|
//! | own 1 MiB buffer -> /dev/null             | 48.6      | 21.4        | 70.8    | 21.3      |
//! | no buffer -> BufWriter(1 MiB, /dev/null)  | 31.2      | 15.4        | 43.9    | 17.6      |
//! | own 1 MiB -> BufWriter(1 MiB), two copies | 39.6      | 11.3        | 57.9    | 11.6      |
//! | no buffer, one writev per packet          | 5.1       | 5.0         | 5.4     | 5.3       |
//!
//! So: the writer's own buffer is the fastest, and an extra `BufWriter` as large as it only
//! adds a second copy. At the 660 kpps the NFLOG reader sustained, ~21 ns per small pcapng
//! record is about 1.4% of a core, before whatever the sink itself costs.

// A failed unwrap in a helper is a failed benchmark run.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::io::{self, BufWriter, Write};
use std::time::Instant;

use edgecap_pcap::{DEFAULT_BUFFER_CAPACITY, Direction, Format, Interface, Section, Writer};

const MIB: usize = 1 << 20;

fn run<W: Write>(label: &str, format: Format, sink: W, capacity: usize, len: usize, n: u64) {
    let ifaces = [Interface::raw("bench/eth0", 65535)];
    let section = Section::default();
    let mut w = Writer::with_buffer_capacity(sink, format, &section, &ifaces, capacity).unwrap();
    let data = vec![0x45u8; len];
    let start = Instant::now();
    for i in 0..n {
        let drops = u64::from(i % 1000 == 0);
        let orig = len as u32;
        black_box(
            w.write_packet(0, i, black_box(&data), orig, Direction::Inbound, drops)
                .unwrap(),
        );
    }
    let bytes = w.bytes_written();
    drop(black_box(w.finish().unwrap()));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:<44} {format:<6} {len:>5} B: {:>6.2} Mpps {:>6.2} GB/s",
        n as f64 / secs / 1e6,
        bytes as f64 / secs / 1e9,
    );
}

fn dev_null() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap()
}

#[test]
#[ignore = "timing print; run explicitly in release mode"]
fn writer_throughput() {
    for len in [92usize, 1428] {
        let n = if len < 500 { 5_000_000 } else { 2_000_000 };
        for format in [Format::Pcapng, Format::Pcap] {
            run(
                "own 1 MiB buffer -> io::sink",
                format,
                io::sink(),
                DEFAULT_BUFFER_CAPACITY,
                len,
                n,
            );
            let bw = BufWriter::with_capacity(MIB, io::sink());
            run(
                "no buffer -> BufWriter(1 MiB, io::sink)",
                format,
                bw,
                0,
                len,
                n,
            );
            let bw = BufWriter::with_capacity(MIB, io::sink());
            run(
                "own 1 MiB -> BufWriter(1 MiB, io::sink)",
                format,
                bw,
                MIB,
                len,
                n,
            );
            let bw = BufWriter::with_capacity(64 << 10, io::sink());
            run(
                "own 1 MiB -> BufWriter(64 KiB, io::sink)",
                format,
                bw,
                MIB,
                len,
                n,
            );
            run(
                "own 64 KiB buffer -> io::sink",
                format,
                io::sink(),
                64 << 10,
                len,
                n,
            );
            run(
                "own 1 MiB buffer -> /dev/null",
                format,
                dev_null(),
                MIB,
                len,
                n,
            );
            let bw = BufWriter::with_capacity(MIB, dev_null());
            run(
                "no buffer -> BufWriter(1 MiB, /dev/null)",
                format,
                bw,
                0,
                len,
                n,
            );
            run(
                "no buffer -> /dev/null (writev per packet)",
                format,
                dev_null(),
                0,
                len,
                n / 20,
            );
        }
    }
}
