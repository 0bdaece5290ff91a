//! The NFLOG reader: binds a group on a tuned netlink socket and parses batches in place.
//!
//! Tuning (see `reference/kernel-capture-facts.md` §2): a receive buffer forced to tens of MiB,
//! 128 KiB kernel batches flushed at 1000 packets or 10 ms, sequence numbers for exact loss
//! counting, and a 1 MiB user buffer so one `recv` takes a whole batch. Packets are borrowed
//! slices of that buffer: nothing is copied or allocated per packet.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::nl::{self, Attrs, MsgBuilder, Msgs, NlSocket};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;

const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_NLBUFSIZ: u16 = 3;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULA_CFG_FLAGS: u16 = 6;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_CFG_CMD_UNBIND: u8 = 2;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULNL_CFG_F_SEQ: u16 = 1;
/// The kernel refuses larger copy ranges: the attribute length is 16 bits.
pub const MAX_SNAPLEN: u32 = 0xffff - 4;

const NFULA_PACKET_HDR: u16 = 1;
const NFULA_TIMESTAMP: u16 = 3;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NFULA_SEQ: u16 = 12;

/// How the group's kernel instance and our socket are set up.
#[derive(Debug, Clone)]
pub struct NflogConfig {
    pub group: u16,
    /// Bytes of each packet the kernel copies (`NFULA_CFG_MODE` copy range).
    pub snaplen: u32,
    /// Socket receive buffer (the kernel doubles it).
    pub rcvbuf: usize,
    /// Kernel batch buffer; the kernel accepts at most 131072.
    pub nlbufsiz: u32,
    /// Flush a batch once it holds this many packets.
    pub qthresh: u32,
    /// Flush a partial batch after this many hundredths of a second.
    pub timeout_cs: u32,
}

impl NflogConfig {
    pub fn tuned(group: u16, snaplen: u32) -> Self {
        Self {
            group,
            snaplen,
            rcvbuf: 32 << 20,
            nlbufsiz: 131_072,
            qthresh: 1000,
            timeout_cs: 1,
        }
    }
}

/// Counters of the socket itself, for the summary and for tuning.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderStats {
    pub batches: u64,
    /// Times the kernel reported the socket overran (one report covers one or more batches).
    pub enobufs: u64,
    /// Receives longer than our buffer (cannot happen with the tuned sizes; counted anyway).
    pub truncated: u64,
    /// Receive buffer the kernel granted.
    pub rcvbuf: usize,
}

/// One logged packet, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// NFLOG per-instance sequence number (exact: gaps are lost packets).
    pub seq: Option<u32>,
    /// Netfilter hook the packet was logged at (0 prerouting .. 4 postrouting).
    pub hook: u8,
    /// Kernel receive timestamp in ns since the epoch, when the kernel gave one.
    pub timestamp_ns: Option<u64>,
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    pub prefix: Option<&'a [u8]>,
    /// The network-layer packet, cut at the snaplen.
    pub payload: &'a [u8],
}

/// A bound NFLOG group. Dropping it closes the socket, which frees the group.
#[derive(Debug)]
pub struct NflogReader {
    sock: NlSocket,
    group: u16,
    buf: Vec<u8>,
    len: usize,
    stats: ReaderStats,
}

impl NflogReader {
    /// Binds and configures the group. Fails with [`Error::GroupBusy`] when another socket has it
    /// (the kernel says EPERM for that, not EBUSY, on 6.x).
    pub fn bind(cfg: &NflogConfig) -> Result<Self, Error> {
        let sock = NlSocket::open().map_err(|e| Error::Socket(e.to_string()))?;
        sock.set_ext_ack();
        let rcvbuf = sock
            .set_rcvbuf(cfg.rcvbuf)
            .map_err(|e| Error::Socket(e.to_string()))?;
        let mut r = Self {
            sock,
            group: cfg.group,
            buf: vec![0; 1 << 20],
            len: 0,
            stats: ReaderStats {
                rcvbuf,
                ..ReaderStats::default()
            },
        };

        let mut b = MsgBuilder::new();
        let m = b.begin_msg(
            config_type(),
            nl::NLM_F_REQUEST | nl::NLM_F_ACK,
            1,
            0,
            cfg.group,
        );
        b.attr(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]);
        b.end_msg(m);
        r.request(&b, 1, "binding")?;

        let mut b = MsgBuilder::new();
        let m = b.begin_msg(
            config_type(),
            nl::NLM_F_REQUEST | nl::NLM_F_ACK,
            2,
            0,
            cfg.group,
        );
        let mut mode = [0u8; 6];
        mode[..4].copy_from_slice(&cfg.snaplen.min(MAX_SNAPLEN).to_be_bytes());
        mode[4] = NFULNL_COPY_PACKET;
        b.attr(NFULA_CFG_MODE, &mode);
        b.attr_be16(NFULA_CFG_FLAGS, NFULNL_CFG_F_SEQ);
        b.attr_be32(NFULA_CFG_NLBUFSIZ, cfg.nlbufsiz);
        b.attr_be32(NFULA_CFG_QTHRESH, cfg.qthresh);
        b.attr_be32(NFULA_CFG_TIMEOUT, cfg.timeout_cs);
        b.end_msg(m);
        r.request(&b, 2, "configuring")?;
        Ok(r)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    fn request(&mut self, b: &MsgBuilder, seq: u32, what: &str) -> Result<(), Error> {
        self.sock
            .send(b.bytes())
            .map_err(|e| Error::Socket(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let Some((n, _)) = self
                .sock
                .recv_until(&mut self.buf, deadline)
                .map_err(|e| Error::Socket(e.to_string()))?
            else {
                return Err(Error::Protocol(format!(
                    "no answer {what} NFLOG group {}",
                    self.group
                )));
            };
            for msg in Msgs::new(&self.buf[..n]) {
                if msg.ty != nl::NLMSG_ERROR || msg.seq != seq {
                    continue;
                }
                let (code, text) = nl::parse_error(msg.body).unwrap_or((0, None));
                return match -code {
                    0 => Ok(()),
                    libc::EBUSY => Err(Error::GroupBusy { group: self.group }),
                    // The kernel answers EPERM both to a caller without CAP_NET_ADMIN and to a
                    // bind of a group another socket holds; only the capability tells them apart.
                    libc::EPERM if has_net_admin() => Err(Error::GroupBusy { group: self.group }),
                    libc::EPERM | libc::EACCES => Err(Error::NotPermitted {
                        what: format!("{what} NFLOG group {}", self.group),
                    }),
                    libc::EOPNOTSUPP | libc::ENOENT | libc::EPROTONOSUPPORT => {
                        Err(Error::Unsupported {
                            feature: "NFLOG",
                            module: "nfnetlink_log",
                            detail: std::io::Error::from_raw_os_error(-code).to_string(),
                        })
                    }
                    errno => Err(crate::error::kernel_error(
                        errno,
                        text,
                        &format!("{what} NFLOG group {}", self.group),
                    )),
                };
            }
        }
    }

    /// Waits up to `timeout` for a batch and receives it. Returns `false` when nothing arrived
    /// in that time. An overrun report is counted ([`ReaderStats::enobufs`]; the sequence gaps
    /// tell how many packets it cost) and the batches queued behind it are still read.
    pub fn recv(&mut self, timeout: Duration) -> Result<bool, Error> {
        self.len = 0;
        let got = self
            .sock
            .recv_until(&mut self.buf, Instant::now() + timeout)
            .map_err(|e| Error::Socket(e.to_string()))?;
        self.stats.enobufs = self.sock.overruns();
        let Some((n, truncated)) = got else {
            return Ok(false);
        };
        self.len = n;
        self.stats.batches += 1;
        if truncated {
            self.stats.truncated += 1;
        }
        Ok(true)
    }

    /// The packets of the last received batch.
    pub fn packets(&self) -> Packets<'_> {
        Packets {
            msgs: Msgs::new(&self.buf[..self.len]),
        }
    }

    /// Tells the kernel to drop the group's instance (closing the socket does the same).
    pub fn unbind(self) -> Result<(), Error> {
        let mut b = MsgBuilder::new();
        let m = b.begin_msg(config_type(), nl::NLM_F_REQUEST, 3, 0, self.group);
        b.attr(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_UNBIND]);
        b.end_msg(m);
        self.sock
            .send(b.bytes())
            .map_err(|e| Error::Socket(e.to_string()))
    }
}

/// Whether this process holds CAP_NET_ADMIN (bit 12 of the effective set).
fn has_net_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

fn config_type() -> u16 {
    (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
}

/// Iterator over the packets of one batch; skips `NLMSG_DONE` and anything that is not a packet.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    msgs: Msgs<'a>,
}

impl<'a> Iterator for Packets<'a> {
    type Item = Packet<'a>;
    fn next(&mut self) -> Option<Packet<'a>> {
        for msg in self.msgs.by_ref() {
            if msg.ty == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
                && let Some(p) = parse_packet(msg.body)
            {
                return Some(p);
            }
        }
        None
    }
}

/// Parses one `NFULNL_MSG_PACKET` body (after the nlmsghdr). `None` when it carries no payload.
pub fn parse_packet(body: &[u8]) -> Option<Packet<'_>> {
    let attrs = body.get(nl::NFGENMSG_LEN..)?;
    let mut p = Packet {
        seq: None,
        hook: 0,
        timestamp_ns: None,
        indev: None,
        outdev: None,
        prefix: None,
        payload: &[],
    };
    let mut have_payload = false;
    for (ty, v) in Attrs::new(attrs) {
        match ty {
            NFULA_PACKET_HDR => p.hook = *v.get(2)?,
            NFULA_TIMESTAMP => {
                let sec = nl::be64(v)?;
                let usec = nl::be64(v.get(8..)?)?;
                p.timestamp_ns = Some(
                    sec.saturating_mul(1_000_000_000)
                        .saturating_add(usec.saturating_mul(1000)),
                );
            }
            NFULA_IFINDEX_INDEV => p.indev = nl::be32(v),
            NFULA_IFINDEX_OUTDEV => p.outdev = nl::be32(v),
            NFULA_PAYLOAD => {
                p.payload = v;
                have_payload = true;
            }
            NFULA_PREFIX => p.prefix = Some(v.split(|&c| c == 0).next().unwrap_or(v)),
            NFULA_SEQ => p.seq = nl::be32(v),
            _ => {}
        }
    }
    have_payload.then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet_msg(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = MsgBuilder::new();
        let m = b.begin_msg((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET, 0, 0, 2, 7);
        b.attr(NFULA_PACKET_HDR, &[0x08, 0x00, 2, 0]);
        let mut ts = Vec::new();
        ts.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        ts.extend_from_slice(&123_456u64.to_be_bytes());
        b.attr(NFULA_TIMESTAMP, &ts);
        b.attr_be32(NFULA_IFINDEX_INDEV, 3);
        b.attr(NFULA_PAYLOAD, payload);
        b.attr_str(NFULA_PREFIX, "pre");
        b.attr_be32(NFULA_SEQ, seq);
        b.end_msg(m);
        b.bytes().to_vec()
    }

    #[test]
    fn parses_a_batch_in_place_and_skips_done() {
        let mut buf = packet_msg(41, &[0x45, 0, 0, 20]);
        buf.extend(packet_msg(42, &[0x60; 7]));
        let mut b = MsgBuilder::new();
        let m = b.begin_msg(nl::NLMSG_DONE, nl::NLM_F_MULTI, 0, 0, 0);
        b.end_msg(m);
        buf.extend_from_slice(b.bytes());
        let ps: Vec<_> = Packets {
            msgs: Msgs::new(&buf),
        }
        .collect();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].seq, Some(41));
        assert_eq!(ps[0].hook, 2);
        assert_eq!(ps[0].indev, Some(3));
        assert_eq!(ps[0].payload, &[0x45, 0, 0, 20]);
        assert_eq!(ps[0].prefix, Some(&b"pre"[..]));
        assert_eq!(ps[0].timestamp_ns, Some(1_700_000_000_123_456_000));
        assert_eq!(ps[1].payload.len(), 7);
    }

    #[test]
    fn an_absurd_timestamp_saturates_instead_of_overflowing() {
        let mut b = MsgBuilder::new();
        let m = b.begin_msg((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET, 0, 0, 2, 7);
        let mut ts = Vec::new();
        ts.extend_from_slice(&1u64.to_be_bytes());
        ts.extend_from_slice(&u64::MAX.to_be_bytes());
        b.attr(NFULA_TIMESTAMP, &ts);
        b.attr(NFULA_PAYLOAD, &[0x45, 0, 0, 20]);
        b.end_msg(m);
        let p = parse_packet(&b.bytes()[nl::NLMSG_HDRLEN..]).unwrap();
        assert_eq!(p.timestamp_ns, Some(u64::MAX));
    }

    #[test]
    fn truncated_batches_never_panic() {
        let buf = packet_msg(1, &[0x45; 64]);
        for cut in 0..buf.len() {
            let _ = Packets {
                msgs: Msgs::new(&buf[..cut]),
            }
            .count();
            let _ = parse_packet(&buf[nl::NLMSG_HDRLEN.min(cut)..cut]);
        }
    }
}
