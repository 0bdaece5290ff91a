//! Streaming: the output is a readable file at every flush, and can be piped straight into a
//! reader (`edgecap ... -w - | tshark -r -`).

mod common;

use std::cell::RefCell;
use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;

use common::readback::{pcap_records, pcapng_blocks};
use common::{interfaces, packets, section, tool, write_sample};
use edgecap_pcap::{Format, Writer};
use pcap_parser::pcapng::Block;

/// A sink the test can look into while the writer still owns it.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_flush_leaves_a_complete_file() {
    for format in [Format::Pcapng, Format::Pcap] {
        let shared = Shared::default();
        let mut w = Writer::new(shared.clone(), format, &section(), &interfaces()).unwrap();
        w.flush().unwrap();
        assert_eq!(shared.0.borrow().len() as u64, w.bytes_written());
        for (n, p) in packets().iter().enumerate() {
            w.write_packet(p.iface, p.ts_ns, &p.data, p.orig_len, p.dir, p.drops)
                .unwrap();
            // Buffered until flushed: the sink has seen nothing of this packet yet.
            assert!(w.buffered() > 0);
            w.flush().unwrap();
            let bytes = shared.0.borrow();
            assert_eq!(bytes.len() as u64, w.bytes_written());
            let seen = match format {
                Format::Pcapng => pcapng_blocks(&bytes)
                    .iter()
                    .filter(|b| matches!(b, Block::EnhancedPacket(_)))
                    .count(),
                Format::Pcap => pcap_records(&bytes).1.len(),
            };
            assert_eq!(seen, n + 1, "{format}");
        }
    }
}

#[test]
fn vec_output_equals_file_output() {
    for format in [Format::Pcapng, Format::Pcap] {
        let (in_memory, total) = write_sample(Vec::new(), format);
        let path = common::write_sample_file(&format!("streaming.{format}"), format);
        assert_eq!(std::fs::read(path).unwrap(), in_memory);
        assert_eq!(in_memory.len() as u64, total);
    }
}

/// Feeds the sample through a pipe into `reader -r -` and returns what it printed.
fn pipe_into(reader: &std::path::Path, args: &[&str], format: Format) -> String {
    let mut child = Command::new(reader)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the reader");
    let stdin = child.stdin.take().expect("piped stdin");
    // No writer buffer: each record goes to the pipe as it is written, as `-w -` would.
    let mut w = Writer::with_buffer_capacity(stdin, format, &section(), &interfaces(), 0)
        .expect("start the file");
    for p in packets() {
        w.write_packet(p.iface, p.ts_ns, &p.data, p.orig_len, p.dir, p.drops)
            .expect("write a packet into the pipe");
    }
    drop(w.finish().expect("finish the file"));
    let out = child.wait_with_output().expect("wait for the reader");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed: {stderr}",
        reader.display()
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn tshark_reads_pcapng_from_a_pipe() {
    let Some(tshark) = tool("tshark") else { return };
    let args = [
        "-r",
        "-",
        "-T",
        "fields",
        "-e",
        "frame.time_epoch",
        "-e",
        "frame.interface_name",
    ];
    let out = pipe_into(&tshark, &args, Format::Pcapng);
    let want: Vec<String> = packets()
        .iter()
        .map(|p| {
            let name = &interfaces()[p.iface as usize].name;
            format!(
                "{}.{:09}\t{name}",
                p.ts_ns / 1_000_000_000,
                p.ts_ns % 1_000_000_000
            )
        })
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

#[test]
fn tcpdump_reads_pcap_from_a_pipe() {
    let Some(tcpdump) = tool("tcpdump") else {
        return;
    };
    let out = pipe_into(&tcpdump, &["-tt", "--nano", "-n", "-r", "-"], Format::Pcap);
    let stamps: Vec<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
    let want: Vec<String> = packets()
        .iter()
        .map(|p| format!("{}.{:09}", p.ts_ns / 1_000_000_000, p.ts_ns % 1_000_000_000))
        .collect();
    assert_eq!(stamps, want);
}
