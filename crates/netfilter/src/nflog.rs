//! The NFLOG reader: binds a group on a tuned netlink socket and parses batches in place.
//!
//! Tuning (see `reference/kernel-capture-facts.md` §2): a receive buffer forced to tens of MiB,
//! 128 KiB kernel batches flushed at 1000 packets or 10 ms, sequence numbers for exact loss
//! counting, and a 1 MiB user buffer so one `recv` takes a whole batch. Packets are borrowed
//! slices of that buffer: nothing is copied or allocated per packet. The messages themselves
//! are built and parsed by [`crate::nflog_msg`].

use std::time::{Duration, Instant};

use crate::codec::{self, Msgs};
use crate::error::Error;
use crate::nflog_msg::{SEQ_BIND, SEQ_CONFIGURE, bind_request, configure_request, unbind_request};
use crate::socket::NlSocket;

pub use crate::nflog_msg::{MAX_SNAPLEN, NflogConfig, Packet, Packets, parse_packet};

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
        let sock = NlSocket::open().map_err(Error::socket("opening an NFLOG socket"))?;
        sock.set_ext_ack();
        let rcvbuf = sock
            .set_rcvbuf(cfg.rcvbuf)
            .map_err(Error::socket("setting the NFLOG receive buffer"))?;
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
        r.request(&bind_request(cfg.group), SEQ_BIND, "binding")?;
        r.request(&configure_request(cfg), SEQ_CONFIGURE, "configuring")?;
        Ok(r)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    fn request(&mut self, msg: &[u8], seq: u32, what: &str) -> Result<(), Error> {
        self.sock
            .send(msg)
            .map_err(Error::socket("sending an NFLOG config request"))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let Some((n, _)) = self
                .sock
                .recv_until(&mut self.buf, deadline)
                .map_err(Error::socket("receiving an NFLOG config answer"))?
            else {
                return Err(Error::Protocol(format!(
                    "no answer {what} NFLOG group {}",
                    self.group
                )));
            };
            for msg in Msgs::new(&self.buf[..n]) {
                if msg.ty != codec::NLMSG_ERROR || msg.seq != seq {
                    continue;
                }
                let (code, text) = codec::parse_error(msg.body).unwrap_or((0, None));
                return self.config_answer(-code, text, what);
            }
        }
    }

    /// What the kernel's answer `errno` (0: success) to a config request means.
    fn config_answer(&self, errno: i32, text: Option<String>, what: &str) -> Result<(), Error> {
        match errno {
            0 => Ok(()),
            libc::EBUSY => Err(Error::GroupBusy { group: self.group }),
            // The kernel answers EPERM both to a caller without CAP_NET_ADMIN and to a
            // bind of a group another socket holds; only the capability tells them apart.
            libc::EPERM if has_net_admin() => Err(Error::GroupBusy { group: self.group }),
            libc::EPERM | libc::EACCES => Err(Error::NotPermitted {
                what: format!("{what} NFLOG group {}", self.group),
            }),
            libc::EOPNOTSUPP | libc::ENOENT | libc::EPROTONOSUPPORT => Err(Error::Unsupported {
                feature: "NFLOG",
                module: "nfnetlink_log",
                detail: std::io::Error::from_raw_os_error(errno).to_string(),
            }),
            errno => Err(crate::error::kernel_error(
                errno,
                text,
                &format!("{what} NFLOG group {}", self.group),
            )),
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
            .map_err(Error::socket("receiving NFLOG batches"))?;
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
        Packets::new(&self.buf[..self.len])
    }

    /// Tells the kernel to drop the group's instance (closing the socket does the same).
    pub fn unbind(self) -> Result<(), Error> {
        self.sock
            .send(&unbind_request(self.group))
            .map_err(Error::socket("sending the NFLOG unbind request"))
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
