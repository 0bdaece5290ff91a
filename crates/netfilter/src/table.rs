//! The capture table: one `inet` table per capture, owned by this process's netlink socket.
//!
//! Ownership (`NFT_TABLE_F_OWNER`, Linux 5.12) is what makes a capture crash-safe: the kernel
//! destroys the table, its chains and rules when the owning socket closes, which happens on a
//! normal exit, on a signal and on `kill -9` alike. Every change is one atomic batch.

use std::time::{Duration, Instant};

use edgecap_filter::ir::Conjunction;

use crate::error::{Error, kernel_error};
use crate::expr;
use crate::nl::{self, MsgBuilder, Msgs, NlSocket};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFPROTO_INET: u8 = 1;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFT_TABLE_F_OWNER: u32 = 2;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
const NF_ACCEPT: u32 = 1;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;

const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

/// Socket buffers of the table's netlink socket, each way (the kernel doubles the value).
const BATCH_SOCKET_BUFFER: usize = 8 << 20;

const COUNTER_SEEN: &str = "seen";
const COUNTER_LOGGED: &str = "logged";

/// A netfilter hook of the `inet` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookNum {
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
    /// `inet` ingress (Linux 5.10+): per device, before prerouting; needs [`Hook::device`].
    Ingress = 5,
}

impl HookNum {
    pub fn name(self) -> &'static str {
        match self {
            Self::Prerouting => "prerouting",
            Self::Input => "input",
            Self::Forward => "forward",
            Self::Output => "output",
            Self::Postrouting => "postrouting",
            Self::Ingress => "ingress",
        }
    }

    /// Parses the nft name of a hook.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Prerouting,
            Self::Input,
            Self::Forward,
            Self::Output,
            Self::Postrouting,
            Self::Ingress,
        ]
        .into_iter()
        .find(|h| h.name() == name)
    }
}

/// Where one base chain of the capture attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub hook: HookNum,
    pub priority: i32,
    /// The device of an `ingress` hook (ignored by the other hooks).
    pub device: Option<String>,
}

/// One capture point: its hooks, and the label that names its chains and counters and is
/// carried as the NFLOG prefix of its packets, so one group can serve several points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointRules {
    /// Short label (`p0`, `p1`, ...): at most 15 bytes, letters, digits and `_`.
    pub label: String,
    pub hooks: Vec<Hook>,
}

/// What the capture rules do with a matching packet.
#[derive(Debug, Clone)]
pub struct RuleSpec<'a> {
    /// The compiled filter: one rule per conjunction.
    pub filter: &'a [Conjunction],
    /// NFLOG group the packets are logged to.
    pub group: u16,
    /// Bytes of each packet copied to the group.
    pub snaplen: u32,
    /// Log one matching packet in N (random), or every packet when `None`.
    pub sample_one_in: Option<u32>,
}

/// Packets counted by the capture's named counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets that matched the filter (before sampling).
    pub matched: u64,
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
    seq: u32,
    buf: Vec<u8>,
}

impl CaptureTable {
    /// Creates the owned table, per point its counters, one base chain per hook and the rules,
    /// in one atomic batch: either all of it is live afterwards or none of it.
    pub fn install(name: &str, points: &[PointRules], spec: &RuleSpec<'_>) -> Result<Self, Error> {
        let sock = NlSocket::open().map_err(|e| Error::Socket(e.to_string()))?;
        sock.set_ext_ack();
        // The whole batch is one message, and the kernel acknowledges each of its messages
        // (each ACK an skb of about a kilobyte of receive buffer): the defaults (208 KiB)
        // overflow with a few hundred rules and their sets, failing with EMSGSIZE or ENOBUFS.
        let _ = sock.set_sndbuf(BATCH_SOCKET_BUFFER);
        let _ = sock.set_rcvbuf(BATCH_SOCKET_BUFFER);
        let mut t = Self {
            sock,
            name: name.to_owned(),
            chains: Vec::new(),
            sampled: spec.sample_one_in.is_some(),
            seq: 1,
            buf: vec![0; 64 * 1024],
        };
        let mut b = MsgBuilder::new();
        let first = t.begin_batch(&mut b);
        let create = nl::NLM_F_REQUEST | nl::NLM_F_CREATE | nl::NLM_F_ACK;

        let m = b.begin_msg(
            msg_type(NFT_MSG_NEWTABLE),
            create,
            t.next_seq(),
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_TABLE_NAME, name);
        b.attr_be32(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER);
        b.end_msg(m);

        // Ids of the anonymous sets of this batch, by which rules find their sets.
        let mut set_id = 0u32;
        for point in points {
            let seen = counter_name(COUNTER_SEEN, &point.label);
            let logged = counter_name(COUNTER_LOGGED, &point.label);
            let counters = if t.sampled {
                vec![&seen, &logged]
            } else {
                vec![&logged]
            };
            for c in counters {
                let m = b.begin_msg(
                    msg_type(NFT_MSG_NEWOBJ),
                    create,
                    t.next_seq(),
                    NFPROTO_INET,
                    0,
                );
                b.attr_str(NFTA_OBJ_TABLE, name);
                b.attr_str(NFTA_OBJ_NAME, c);
                b.attr_be32(NFTA_OBJ_TYPE, expr::NFT_OBJECT_COUNTER);
                let d = b.nest_begin(NFTA_OBJ_DATA);
                b.nest_end(d);
                b.end_msg(m);
            }
            for h in &point.hooks {
                let chain = chain_name(&point.label, h);
                let m = b.begin_msg(
                    msg_type(NFT_MSG_NEWCHAIN),
                    create,
                    t.next_seq(),
                    NFPROTO_INET,
                    0,
                );
                b.attr_str(NFTA_CHAIN_TABLE, name);
                b.attr_str(NFTA_CHAIN_NAME, &chain);
                let hk = b.nest_begin(NFTA_CHAIN_HOOK);
                b.attr_be32(NFTA_HOOK_HOOKNUM, h.hook as u32);
                b.attr_be32(NFTA_HOOK_PRIORITY, h.priority as u32);
                if h.hook == HookNum::Ingress {
                    let dev = h.device.as_deref().ok_or_else(|| Error::Unencodable {
                        what: format!("an ingress hook needs a device (point {})", point.label),
                    })?;
                    b.attr_str(NFTA_HOOK_DEV, dev);
                }
                b.nest_end(hk);
                b.attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
                b.attr_str(NFTA_CHAIN_TYPE, "filter");
                b.end_msg(m);

                for conj in spec.filter {
                    let mut sets = {
                        let mut seq = || t.next_seq();
                        expr::declare_sets(
                            &mut b,
                            name,
                            &conj.matches,
                            &mut set_id,
                            &mut seq,
                            msg_type,
                        )
                        .map_err(|e| Error::Unencodable { what: e.0 })?
                    };
                    let m = b.begin_msg(
                        msg_type(NFT_MSG_NEWRULE),
                        create | nl::NLM_F_APPEND,
                        t.next_seq(),
                        NFPROTO_INET,
                        0,
                    );
                    b.attr_str(NFTA_RULE_TABLE, name);
                    b.attr_str(NFTA_RULE_CHAIN, &chain);
                    let exprs = b.nest_begin(NFTA_RULE_EXPRESSIONS);
                    for mt in &conj.matches {
                        expr::encode_match(&mut b, mt, &mut sets)
                            .map_err(|e| Error::Unencodable { what: e.0 })?;
                    }
                    if let Some(n) = spec.sample_one_in {
                        expr::counter_ref(&mut b, &seen);
                        expr::sample_one_in(&mut b, n);
                    }
                    expr::counter_ref(&mut b, &logged);
                    expr::log(&mut b, spec.group, spec.snaplen, Some(&point.label));
                    expr::return_(&mut b);
                    b.nest_end(exprs);
                    b.end_msg(m);
                }
                t.chains.push(chain);
            }
        }
        t.end_batch(&mut b);
        t.run_batch(&b, first)
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
        let mut b = MsgBuilder::new();
        let first = self.begin_batch(&mut b);
        // Per chain: flush its rules, then delete it; each message names the table and the
        // chain with its own attribute ids.
        const STEPS: [(u16, u16, u16); 2] = [
            (NFT_MSG_DELRULE, NFTA_RULE_TABLE, NFTA_RULE_CHAIN),
            (NFT_MSG_DELCHAIN, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME),
        ];
        for chain in std::mem::take(&mut self.chains) {
            for (ty, table_attr, chain_attr) in STEPS {
                let m = b.begin_msg(
                    msg_type(ty),
                    nl::NLM_F_REQUEST | nl::NLM_F_ACK,
                    self.next_seq(),
                    NFPROTO_INET,
                    0,
                );
                b.attr_str(table_attr, &self.name);
                b.attr_str(chain_attr, &chain);
                b.end_msg(m);
            }
        }
        self.end_batch(&mut b);
        self.run_batch(&b, first)
    }

    /// Reads the counters of one point (by its label).
    pub fn counters(&mut self, label: &str) -> Result<Counters, Error> {
        let (logged, logged_bytes) = self.read_counter(&counter_name(COUNTER_LOGGED, label))?;
        let matched = if self.sampled {
            self.read_counter(&counter_name(COUNTER_SEEN, label))?.0
        } else {
            logged
        };
        Ok(Counters {
            matched,
            logged,
            logged_bytes,
        })
    }

    fn read_counter(&mut self, counter: &str) -> Result<(u64, u64), Error> {
        let mut b = MsgBuilder::new();
        let seq = self.next_seq();
        let m = b.begin_msg(
            msg_type(NFT_MSG_GETOBJ),
            nl::NLM_F_REQUEST | nl::NLM_F_ACK,
            seq,
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_OBJ_TABLE, &self.name);
        b.attr_str(NFTA_OBJ_NAME, counter);
        b.attr_be32(NFTA_OBJ_TYPE, expr::NFT_OBJECT_COUNTER);
        b.end_msg(m);
        self.sock
            .send(b.bytes())
            .map_err(|e| Error::Socket(e.to_string()))?;
        let mut result = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let n = self.recv_until(deadline)?;
            for msg in Msgs::new(&self.buf[..n]) {
                if msg.seq != seq {
                    continue;
                }
                if msg.ty == nl::NLMSG_ERROR {
                    let (code, text) = nl::parse_error(msg.body).unwrap_or((0, None));
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
                if msg.ty == msg_type(crate::table::NFT_MSG_NEWOBJ) {
                    result = parse_counter(msg.body.get(nl::NFGENMSG_LEN..).unwrap_or(&[]));
                }
            }
        }
    }

    /// Deletes the table now (it would also go when the socket closes).
    pub fn remove(mut self) -> Result<(), Error> {
        let mut b = MsgBuilder::new();
        let first = self.begin_batch(&mut b);
        let m = b.begin_msg(
            msg_type(NFT_MSG_DELTABLE),
            nl::NLM_F_REQUEST | nl::NLM_F_ACK,
            self.next_seq(),
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_TABLE_NAME, &self.name);
        b.end_msg(m);
        self.end_batch(&mut b);
        self.run_batch(&b, first)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn begin_batch(&mut self, b: &mut MsgBuilder) -> u32 {
        let seq = self.next_seq();
        let m = b.begin_msg(
            NFNL_MSG_BATCH_BEGIN,
            nl::NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        b.end_msg(m);
        seq + 1
    }

    fn end_batch(&mut self, b: &mut MsgBuilder) {
        let seq = self.next_seq();
        let m = b.begin_msg(
            NFNL_MSG_BATCH_END,
            nl::NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        b.end_msg(m);
    }

    /// Sends a batch and waits for the ACK of every message in it (`first..seq`, the batch end
    /// excluded). The first error wins; the kernel has then rolled the whole batch back.
    fn run_batch(&mut self, b: &MsgBuilder, first: u32) -> Result<(), Error> {
        let last = self.seq - 1;
        self.sock
            .send(b.bytes())
            .map_err(|e| Error::Socket(e.to_string()))?;
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
                if msg.ty != nl::NLMSG_ERROR || msg.seq < first || msg.seq > last {
                    continue;
                }
                acked += 1;
                let (code, text) = nl::parse_error(msg.body).unwrap_or((0, None));
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
            Ok(None) if self.sock.overruns() > 0 => Err(Error::Socket(format!(
                "the kernel's answers were lost: this socket's receive buffer overflowed {} \
                 time(s) (ENOBUFS)",
                self.sock.overruns()
            ))),
            Ok(None) => Err(Error::Protocol(
                "timed out waiting for the kernel's answer".into(),
            )),
            Err(e) => Err(Error::Socket(e.to_string())),
        }
    }
}

fn counter_name(kind: &str, label: &str) -> String {
    format!("{label}_{kind}")
}

/// `p0_prerouting_m310`, `p1_ingress_eth0_0`: unique per point and hook.
fn chain_name(label: &str, h: &Hook) -> String {
    match (&h.device, h.hook) {
        (Some(dev), HookNum::Ingress) => {
            format!("{label}_ingress_{dev}_{}", priority_label(h.priority))
        }
        _ => format!("{label}_{}_{}", h.hook.name(), priority_label(h.priority)),
    }
}

fn describe_seq(i: u32) -> String {
    format!("batch message {i}")
}

fn msg_type(nft: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | nft
}

/// `-310` -> `m310`, `10` -> `10`: chain names may not carry a minus sign nicely in nft output.
fn priority_label(p: i32) -> String {
    if p < 0 {
        format!("m{}", p.unsigned_abs())
    } else {
        p.to_string()
    }
}

fn parse_counter(attrs: &[u8]) -> Option<(u64, u64)> {
    let data = nl::Attrs::new(attrs)
        .find(|(ty, _)| *ty == NFTA_OBJ_DATA)?
        .1;
    let mut packets = None;
    let mut bytes = None;
    for (ty, v) in nl::Attrs::new(data) {
        match ty {
            NFTA_COUNTER_PACKETS => packets = nl::be64(v),
            NFTA_COUNTER_BYTES => bytes = nl::be64(v),
            _ => {}
        }
    }
    Some((packets?, bytes.unwrap_or(0)))
}
