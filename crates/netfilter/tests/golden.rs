//! Golden bytes, no root needed: every message the pure builders make for a case equals, byte
//! for byte, what the kernel path sent when the case was recorded (`tests/golden/*.hex`, by
//! `examples/record_golden.rs` under strace; `tests/kernel.rs` shows that `nft` reads those
//! batches back as the filters they stand for). The kernel's recorded answers (ACKs, an
//! error with its extended ACK, a counter, an NFLOG batch) decode, also when cut short.
//! Netlink headers are in host byte order and the recording is little-endian (x86_64).
#![cfg(target_endian = "little")]
#![allow(clippy::unwrap_used)]

#[path = "golden/cases.rs"]
mod cases;

use cases::Case;
use edgecap_netfilter::batch::{self, COUNTER_LOGGED, COUNTER_SEEN, counter_name};
use edgecap_netfilter::codec::{self, Msgs, Seq};
use edgecap_netfilter::nflog_msg::{self, Packets};
use edgecap_netfilter::table::SEQ_BEFORE_INSTALL;
use edgecap_netfilter::{NflogConfig, RuleSpec};

/// The buffers of one step, in order: `('>', sent)` or `('<', received)`.
type Buffers = Vec<(char, Vec<u8>)>;

/// One recorded case: its steps by name.
struct Recording {
    steps: Vec<(String, Buffers)>,
}

impl Recording {
    fn load(case: &Case) -> Self {
        let path = format!(
            "{}/tests/golden/{}.hex",
            env!("CARGO_MANIFEST_DIR"),
            case.name
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let mut steps: Vec<(String, Buffers)> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some(name) = line.strip_prefix("== ") {
                steps.push((name.to_owned(), Vec::new()));
                continue;
            }
            let (dir, hex) = line.split_once(' ').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let dir = dir.chars().next().unwrap();
            steps.last_mut().unwrap().1.push((dir, bytes));
        }
        Self { steps }
    }

    fn buffers(&self, step: &str, dir: char) -> Vec<&[u8]> {
        let (_, bufs) = self
            .steps
            .iter()
            .find(|(name, _)| name == step)
            .unwrap_or_else(|| panic!("no step {step}"));
        bufs.iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, b)| b.as_slice())
            .collect()
    }

    fn sent(&self, step: &str) -> Vec<&[u8]> {
        self.buffers(step, '>')
    }

    fn received(&self, step: &str) -> Vec<&[u8]> {
        self.buffers(step, '<')
    }

    fn all_received(&self) -> impl Iterator<Item = &[u8]> {
        self.steps
            .iter()
            .flat_map(|(_, bufs)| bufs.iter())
            .filter(|(d, _)| *d == '<')
            .map(|(_, b)| b.as_slice())
    }
}

fn spec(case: &Case) -> RuleSpec<'_> {
    RuleSpec {
        filter: &case.filter,
        group: case.group,
        snaplen: case.snaplen,
        sample_one_in: case.sample_one_in,
        counting: edgecap_netfilter::Counting::Objects,
    }
}

/// The requests `CaptureTable` makes for `case`, in order, from the pure builders: install,
/// the counter reads of every point, detach.
struct Requests {
    install: batch::InstallBatch,
    counters: Vec<Vec<u8>>,
    detach: batch::Batch,
}

fn requests(case: &Case) -> Requests {
    let mut seq = Seq::after(SEQ_BEFORE_INSTALL);
    let install = batch::install_batch(&case.table, &case.points, &spec(case), &mut seq).unwrap();
    let mut counters = Vec::new();
    for p in &case.points {
        let mut kinds = vec![COUNTER_LOGGED];
        if case.sample_one_in.is_some() {
            kinds.push(COUNTER_SEEN);
        }
        for kind in kinds {
            let name = counter_name(kind, &p.label);
            counters.push(batch::counter_request(&case.table, &name, seq.fresh()));
        }
    }
    let detach = batch::detach_batch(&case.table, &install.chains, &mut seq);
    Requests {
        install,
        counters,
        detach,
    }
}

/// Compares byte for byte, naming the first difference (a hex dump of kilobytes says little).
fn assert_same(case: &str, what: &str, built: &[u8], recorded: &[u8]) {
    if let Some(i) = (0..built.len().min(recorded.len())).find(|&i| built[i] != recorded[i]) {
        panic!(
            "{case}: {what} differs from the recording at byte {i} of {}: built {:02x?}, \
             recorded {:02x?}",
            recorded.len(),
            &built[i..built.len().min(i + 16)],
            &recorded[i..recorded.len().min(i + 16)]
        );
    }
    assert_eq!(built.len(), recorded.len(), "{case}: {what} length");
}

#[test]
fn nflog_config_requests_equal_the_recorded_ones() {
    for case in cases::cases() {
        let rec = Recording::load(&case);
        let cfg = NflogConfig::tuned(case.group, case.snaplen);
        let sent = rec.sent("nflog-bind");
        assert_eq!(sent.len(), 2, "{}", case.name);
        let bind = nflog_msg::bind_request(case.group);
        assert_same(case.name, "NFLOG bind", &bind, sent[0]);
        let configure = nflog_msg::configure_request(&cfg);
        assert_same(case.name, "NFLOG configure", &configure, sent[1]);
        if case.installs {
            let unbind = nflog_msg::unbind_request(case.group);
            assert_same(case.name, "NFLOG unbind", &unbind, rec.sent("unbind")[0]);
        }
        // Both config requests were acknowledged without error.
        for (buf, seq) in rec.received("nflog-bind").iter().zip([1, 2]) {
            let ack = Msgs::new(buf).next().unwrap();
            assert_eq!((ack.ty, ack.seq), (codec::NLMSG_ERROR, seq));
            assert_eq!(codec::parse_error(ack.body).unwrap().0, 0, "{}", case.name);
        }
    }
}

#[test]
fn install_batches_equal_the_recorded_ones() {
    for case in cases::cases() {
        let rec = Recording::load(&case);
        let sent = rec.sent("install");
        assert_eq!(sent.len(), 1, "{}: one batch, one send", case.name);
        let built = requests(&case).install.batch.bytes;
        assert_same(case.name, "install batch", &built, sent[0]);
    }
}

#[test]
fn counter_reads_and_detach_equal_the_recorded_ones() {
    for case in cases::cases().into_iter().filter(|c| c.installs) {
        let rec = Recording::load(&case);
        let req = requests(&case);
        let sent = rec.sent("counters");
        assert_eq!(sent.len(), req.counters.len(), "{}", case.name);
        for (built, recorded) in req.counters.iter().zip(sent) {
            assert_same(case.name, "counter read", built, recorded);
        }
        let sent = rec.sent("detach");
        assert_same(case.name, "detach batch", &req.detach.bytes, sent[0]);
    }
}

/// The sequence numbers the kernel acknowledged in `step`, each checked to be a success.
fn acked(rec: &Recording, step: &str, case: &str) -> Vec<u32> {
    let mut seqs = Vec::new();
    for buf in rec.received(step) {
        for msg in Msgs::new(buf).filter(|m| m.ty == codec::NLMSG_ERROR) {
            let (code, text) = codec::parse_error(msg.body).unwrap();
            assert_eq!(code, 0, "{case}: {step} message {}: {text:?}", msg.seq);
            seqs.push(msg.seq);
        }
    }
    seqs
}

#[test]
fn the_kernel_acknowledged_exactly_the_messages_a_batch_expects() {
    for case in cases::cases().into_iter().filter(|c| c.installs) {
        let rec = Recording::load(&case);
        let req = requests(&case);
        let want: Vec<u32> = req.install.batch.acked.clone().collect();
        assert_eq!(acked(&rec, "install", case.name), want, "{}", case.name);
        let want: Vec<u32> = req.detach.acked.clone().collect();
        assert_eq!(acked(&rec, "detach", case.name), want, "{}", case.name);
    }
}

#[test]
fn a_refused_batch_decodes_to_the_kernels_errno_and_reason() {
    let case = cases::cases().into_iter().find(|c| !c.installs).unwrap();
    let rec = Recording::load(&case);
    let req = requests(&case);
    let mut errors = Vec::new();
    for buf in rec.received("install") {
        for msg in Msgs::new(buf).filter(|m| m.ty == codec::NLMSG_ERROR) {
            assert!(req.install.batch.acked.contains(&msg.seq));
            errors.push(codec::parse_error(msg.body).unwrap());
        }
    }
    // Every message names the table, whose name is too long for the attribute's policy: each
    // is refused, with the kernel's reason in the extended ACK.
    assert_eq!(errors.len(), req.install.batch.acked.clone().count());
    for (code, text) in &errors {
        assert_eq!(-code, libc::ERANGE, "{errors:?}");
        assert_eq!(text.as_deref(), Some("Attribute failed policy validation"));
    }
}

#[test]
fn a_recorded_nflog_batch_decodes_to_the_packets_sent() {
    let case = cases::cases()
        .into_iter()
        .find(|c| c.datagrams > 0)
        .unwrap();
    let rec = Recording::load(&case);
    let packets: Vec<_> = rec
        .received("packets")
        .into_iter()
        .flat_map(Packets::new)
        .collect();
    assert_eq!(packets.len(), case.datagrams as usize);
    let addr: std::net::Ipv4Addr = cases::TRAFFIC_ADDR.parse().unwrap();
    let first_seq = packets[0].seq.unwrap();
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p.prefix, Some(&b"p0"[..]));
        assert_eq!(p.hook, 4, "logged at postrouting");
        assert_eq!(p.seq, Some(first_seq + i as u32), "consecutive: no loss");
        let ip = p.payload;
        assert_eq!(ip[0] >> 4, 4);
        assert_eq!(ip[9], 17, "UDP");
        assert_eq!(&ip[12..16], &addr.octets());
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let dport = u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]);
        assert_eq!(dport, cases::TRAFFIC_PORT);
        assert_eq!(
            &ip[ihl + 8..],
            &(i as u32).to_be_bytes(),
            "the datagram's body"
        );
    }
    // The point's counter read afterwards counts the same packets.
    let answer = rec.received("counters")[0];
    let newobj = Msgs::new(answer)
        .find(|m| m.ty == batch::msg_type(batch::NFT_MSG_NEWOBJ))
        .unwrap();
    let (logged, bytes) = batch::parse_counter(&newobj.body[codec::NFGENMSG_LEN..]).unwrap();
    assert_eq!(logged, u64::from(case.datagrams));
    let total: usize = packets.iter().map(|p| p.payload.len()).sum();
    assert_eq!(bytes, total as u64, "whole packets, all under the snaplen");
}

/// Every recorded answer, cut at every length: the parsers return what they can, never panic.
#[test]
fn truncated_kernel_answers_never_panic() {
    for case in cases::cases() {
        let rec = Recording::load(&case);
        for buf in rec.all_received() {
            for cut in 0..=buf.len() {
                let b = &buf[..cut];
                for msg in Msgs::new(b) {
                    let _ = codec::parse_error(msg.body);
                    let _ =
                        batch::parse_counter(msg.body.get(codec::NFGENMSG_LEN..).unwrap_or(&[]));
                    let _ = nflog_msg::parse_packet(msg.body);
                }
                let _ = Packets::new(b).count();
                // Cut inside a message body too, as a short attribute would be.
                let _ = codec::parse_error(b.get(codec::NLMSG_HDRLEN..).unwrap_or(&[]));
            }
        }
    }
}
