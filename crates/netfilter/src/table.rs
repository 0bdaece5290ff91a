//! The capture table: one `inet` table per capture, owned by this process's netlink socket.
//!
//! Ownership (`NFT_TABLE_F_OWNER`, Linux 5.12) is what makes a capture crash-safe: the kernel
//! destroys the table, its chains and rules when the owning socket closes, which happens on a
//! normal exit, on a signal and on `kill -9` alike. Every change is one atomic batch, built by
//! [`crate::batch`]; this file only sends it and collects the kernel's answers.

use std::time::{Duration, Instant};

use crate::batch::{self, Batch, COUNTER_LOGGED, COUNTER_SEEN, counter_name};
use crate::codec::{self, Msgs, Seq};
use crate::error::{Error, kernel_error};
use crate::socket::NlSocket;

pub use crate::rules::{Counting, Hook, HookNum, PointRules, RuleSpec};

/// Socket buffers of the table's netlink socket, each way (the kernel doubles the value).
const BATCH_SOCKET_BUFFER: usize = 8 << 20;

/// A table's messages are numbered from `Seq::after(SEQ_BEFORE_INSTALL)`: its install batch
/// begins with the next number.
pub const SEQ_BEFORE_INSTALL: u32 = 1;

/// Packets counted by the capture's named counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets that matched the filter (before sampling).
    pub matched: u64,
    /// Their bytes (whole packets).
    pub matched_bytes: u64,
    /// Packets handed to NFLOG (after sampling).
    pub logged: u64,
    /// Bytes handed to NFLOG (whole packets, before snaplen).
    pub logged_bytes: u64,
}

/// An installed capture table. Dropping it closes the owning socket, which removes the table.
#[derive(Debug)]
pub struct CaptureTable {
    sock: NlSocket,
    name: String,
    chains: Vec<String>,
    sampled: bool,
    counting: Counting,
    seq: Seq,
    buf: Vec<u8>,
}

impl CaptureTable {
    /// Creates the owned table, per point its counters, one base chain per hook and the rules,
    /// in one atomic batch ([`batch::install_batch`]): either all of it is live afterwards or
    /// none of it.
    pub fn install(name: &str, points: &[PointRules], spec: &RuleSpec<'_>) -> Result<Self, Error> {
        let mut seq = Seq::after(SEQ_BEFORE_INSTALL);
        let install = batch::install_batch(name, points, spec, &mut seq)?;
        let sock = NlSocket::open().map_err(Error::socket("opening an nf_tables socket"))?;
        sock.set_ext_ack();
        // The whole batch is one message, and the kernel acknowledges each of its messages
        // (each ACK an skb of about a kilobyte of receive buffer): the defaults (208 KiB)
        // overflow with a few hundred rules and their sets, failing with EMSGSIZE or ENOBUFS.
        let _ = sock.set_sndbuf(BATCH_SOCKET_BUFFER);
        let _ = sock.set_rcvbuf(BATCH_SOCKET_BUFFER);
        let mut t = Self {
            sock,
            name: name.to_owned(),
            chains: install.chains,
            sampled: spec.sample_one_in.is_some(),
            counting: spec.counting,
            seq,
            buf: vec![0; 64 * 1024],
        };
        t.run_batch(&install.batch)
            .map_err(|e| e.context_install(name))?;
        Ok(t)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of the base chains, in install order.
    pub fn chains(&self) -> &[String] {
        &self.chains
    }

    /// Removes the base chains (and their rules) so no more packets are logged. The counters stay
    /// readable until the table goes.
    pub fn detach(&mut self) -> Result<(), Error> {
        if self.chains.is_empty() {
            return Ok(());
        }
        let chains = std::mem::take(&mut self.chains);
        let b = batch::detach_batch(&self.name, &chains, &mut self.seq);
        self.run_batch(&b)
    }

    /// Reads the counters of one point (by its label). With [`Counting::InRule`] only while
    /// the chains exist (not after [`Self::detach`]).
    pub fn counters(&mut self, label: &str) -> Result<Counters, Error> {
        if self.counting == Counting::InRule {
            return self.rule_counters(label);
        }
        let (logged, logged_bytes) = self.read_counter(&counter_name(COUNTER_LOGGED, label))?;
        let (matched, matched_bytes) = if self.sampled {
            self.read_counter(&counter_name(COUNTER_SEEN, label))?
        } else {
            (logged, logged_bytes)
        };
        Ok(Counters {
            matched,
            matched_bytes,
            logged,
            logged_bytes,
        })
    }

    fn read_counter(&mut self, counter: &str) -> Result<(u64, u64), Error> {
        let seq = self.seq.fresh();
        self.sock
            .send(&batch::counter_request(&self.name, counter, seq))
            .map_err(Error::socket("sending to nf_tables"))?;
        let mut result = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let n = self.recv_until(deadline)?;
            for msg in Msgs::new(&self.buf[..n]) {
                if msg.seq != seq {
                    continue;
                }
                if msg.ty == codec::NLMSG_ERROR {
                    let (code, text) = codec::parse_error(msg.body).unwrap_or((0, None));
                    if code != 0 {
                        return Err(kernel_error(
                            -code,
                            text,
                            &format!("reading counter {counter}"),
                        ));
                    }
                    return result
                        .ok_or_else(|| Error::Protocol(format!("no data for counter {counter}")));
                }
                if msg.ty == batch::msg_type(batch::NFT_MSG_NEWOBJ) {
                    result =
                        batch::parse_counter(msg.body.get(codec::NFGENMSG_LEN..).unwrap_or(&[]));
                }
            }
        }
    }

    /// The in-rule counters of a point: the sum over the rules of its chains (one dump of the
    /// table's rules). In each rule the first counter is before sampling, the second after.
    fn rule_counters(&mut self, label: &str) -> Result<Counters, Error> {
        if self.chains.is_empty() {
            return Err(Error::Protocol(format!(
                "the counters of point {label} were in its rules, gone with its chains"
            )));
        }
        let prefix = format!("{label}_");
        let seq = self.seq.fresh();
        self.sock
            .send(&batch::rules_request(&self.name, seq))
            .map_err(Error::socket("sending to nf_tables"))?;
        let mut c = Counters::default();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let n = self.recv_until(deadline)?;
            for msg in Msgs::new(&self.buf[..n]) {
                if msg.seq != seq {
                    continue;
                }
                match msg.ty {
                    codec::NLMSG_DONE => return Ok(c),
                    codec::NLMSG_ERROR => {
                        let (code, text) = codec::parse_error(msg.body).unwrap_or((0, None));
                        if code != 0 {
                            return Err(kernel_error(
                                -code,
                                text,
                                &format!("reading the rules of point {label}"),
                            ));
                        }
                        return Ok(c);
                    }
                    ty if ty == batch::msg_type(batch::NFT_MSG_NEWRULE) => {
                        let body = msg.body.get(codec::NFGENMSG_LEN..).unwrap_or(&[]);
                        let Some((chain, counters)) = batch::parse_rule_counters(body) else {
                            continue;
                        };
                        if !chain.starts_with(&prefix) || !self.chains.contains(&chain) {
                            continue;
                        }
                        let mut it = counters.into_iter();
                        let first = it.next().unwrap_or_default();
                        let (seen, logged) = match self.sampled {
                            true => (first, it.next().unwrap_or_default()),
                            false => (first, first),
                        };
                        c.matched += seen.0;
                        c.matched_bytes += seen.1;
                        c.logged += logged.0;
                        c.logged_bytes += logged.1;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Deletes the table now (it would also go when the socket closes).
    pub fn remove(mut self) -> Result<(), Error> {
        let b = batch::remove_batch(&self.name, &mut self.seq);
        self.run_batch(&b)
    }

    /// Sends a batch and waits for the ACK of every message in it. The first error wins; the
    /// kernel has then rolled the whole batch back.
    fn run_batch(&mut self, b: &Batch) -> Result<(), Error> {
        self.sock
            .send(&b.bytes)
            .map_err(Error::socket("sending to nf_tables"))?;
        let (first, last) = (*b.acked.start(), *b.acked.end());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut acked = 0u32;
        let want = last - first + 1;
        let mut first_err = None;
        while acked < want {
            let n = match self.recv_until(deadline) {
                Ok(n) => n,
                Err(_) if first_err.is_some() => break,
                Err(e) => return Err(e),
            };
            for msg in Msgs::new(&self.buf[..n]) {
                if msg.ty != codec::NLMSG_ERROR || msg.seq < first || msg.seq > last {
                    continue;
                }
                acked += 1;
                let (code, text) = codec::parse_error(msg.body).unwrap_or((0, None));
                if code != 0 && first_err.is_none() {
                    first_err = Some(kernel_error(-code, text, &describe_seq(msg.seq - first)));
                }
            }
            if first_err.is_some()
                && acked > 0
                && !self
                    .sock
                    .wait_readable(Duration::from_millis(50))
                    .unwrap_or(false)
            {
                break;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The next answer from the kernel, by `deadline`.
    fn recv_until(&mut self, deadline: Instant) -> Result<usize, Error> {
        match self.sock.recv_until(&mut self.buf, deadline) {
            Ok(Some((n, _))) => Ok(n),
            Ok(None) if self.sock.overruns() > 0 => Err(Error::AnswersLost {
                overruns: self.sock.overruns(),
            }),
            Ok(None) => Err(Error::Protocol(
                "timed out waiting for the kernel's answer".into(),
            )),
            Err(e) => Err(Error::socket("receiving from nf_tables")(e)),
        }
    }
}

fn describe_seq(i: u32) -> String {
    format!("batch message {i}")
}
