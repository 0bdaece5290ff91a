//! The nf_tables messages of a capture table, as pure functions: the install batch (owned
//! table, counters, base chains, rules), the detach and remove batches, and the counter read.
//!
//! Each takes its sequence numbers from a [`Seq`] and returns bytes, so the exact batch
//! [`crate::table::CaptureTable`] sends is reproducible without a socket or root; the golden
//! tests (`tests/golden.rs`) compare it with the bytes recorded from the kernel path.

use std::ops::RangeInclusive;

use edgecap_filter::ir::Conjunction;

use crate::codec::{self, MsgBuilder, Seq};
use crate::error::Error;
use crate::expr;
use crate::rules::{Counting, Hook, HookNum, PointRules, RuleSpec, chain_name};

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_INET: u8 = 1;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
pub const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
pub const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;
const NFT_MSG_GETRULE: u16 = 7;

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

const CREATE: u16 = codec::NLM_F_REQUEST | codec::NLM_F_CREATE | codec::NLM_F_ACK;
const CHANGE: u16 = codec::NLM_F_REQUEST | codec::NLM_F_ACK;

pub const COUNTER_SEEN: &str = "seen";
pub const COUNTER_LOGGED: &str = "logged";

/// An nf_tables batch ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// The sequence numbers the kernel acknowledges: every message but the batch framing.
    pub acked: RangeInclusive<u32>,
}

/// The install batch and the base chains it creates, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallBatch {
    pub batch: Batch,
    pub chains: Vec<String>,
}

/// Wraps what `body` adds to a builder in an nf_tables batch, numbering it from `seq`.
fn framed<T>(seq: &mut Seq, body: impl FnOnce(&mut MsgBuilder, &mut Seq) -> T) -> (Batch, T) {
    let mut b = MsgBuilder::new();
    b.batch_begin(seq.fresh(), NFNL_SUBSYS_NFTABLES);
    let first = seq.last().wrapping_add(1);
    let out = body(&mut b, seq);
    let last = seq.last();
    b.batch_end(seq.fresh(), NFNL_SUBSYS_NFTABLES);
    let batch = Batch {
        bytes: b.into_bytes(),
        acked: first..=last,
    };
    (batch, out)
}

/// The batch that creates table `name` owned by the sending socket and, per point, its
/// counters, one base chain per hook and in each chain one rule per conjunction of the filter.
pub fn install_batch(
    name: &str,
    points: &[PointRules],
    spec: &RuleSpec<'_>,
    seq: &mut Seq,
) -> Result<InstallBatch, Error> {
    let (batch, chains) = framed(seq, |b, seq| -> Result<_, Error> {
        let m = b.begin_msg(
            msg_type(NFT_MSG_NEWTABLE),
            CREATE,
            seq.fresh(),
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_TABLE_NAME, name);
        b.attr_be32(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER);
        b.end_msg(m);
        // Ids of the anonymous sets of this batch, by which rules find their sets.
        let mut set_id = 0u32;
        let mut chains = Vec::new();
        for point in points {
            if spec.counting == Counting::Objects {
                counter_objects(b, seq, name, &point.label, spec.sample_one_in.is_some());
            }
            for h in &point.hooks {
                let chain = chain_name(&point.label, h);
                base_chain(b, seq, name, &chain, h, &point.label)?;
                let ctx = RuleCtx {
                    table: name,
                    chain: &chain,
                    label: &point.label,
                    spec,
                };
                for conj in spec.filter {
                    rule(b, seq, &mut set_id, &ctx, conj)?;
                }
                chains.push(chain);
            }
        }
        Ok(chains)
    });
    Ok(InstallBatch {
        batch,
        chains: chains?,
    })
}

/// The point's named counters: `logged`, and `seen` before sampling when sampling.
fn counter_objects(b: &mut MsgBuilder, seq: &mut Seq, table: &str, label: &str, sampled: bool) {
    let kinds: &[&str] = if sampled {
        &[COUNTER_SEEN, COUNTER_LOGGED]
    } else {
        &[COUNTER_LOGGED]
    };
    for kind in kinds {
        let m = b.begin_msg(
            msg_type(NFT_MSG_NEWOBJ),
            CREATE,
            seq.fresh(),
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_OBJ_TABLE, table);
        b.attr_str(NFTA_OBJ_NAME, &counter_name(kind, label));
        b.attr_be32(NFTA_OBJ_TYPE, expr::NFT_OBJECT_COUNTER);
        let d = b.nest_begin(NFTA_OBJ_DATA);
        b.nest_end(d);
        b.end_msg(m);
    }
}

/// A `filter` base chain on hook `h` with policy accept (the capture never drops).
fn base_chain(
    b: &mut MsgBuilder,
    seq: &mut Seq,
    table: &str,
    chain: &str,
    h: &Hook,
    label: &str,
) -> Result<(), Error> {
    let m = b.begin_msg(
        msg_type(NFT_MSG_NEWCHAIN),
        CREATE,
        seq.fresh(),
        NFPROTO_INET,
        0,
    );
    b.attr_str(NFTA_CHAIN_TABLE, table);
    b.attr_str(NFTA_CHAIN_NAME, chain);
    let hk = b.nest_begin(NFTA_CHAIN_HOOK);
    b.attr_be32(NFTA_HOOK_HOOKNUM, h.hook as u32);
    b.attr_be32(NFTA_HOOK_PRIORITY, h.priority as u32);
    if h.hook == HookNum::Ingress {
        let dev = h.device.as_deref().ok_or_else(|| Error::Unencodable {
            what: format!("an ingress hook needs a device (point {label})"),
        })?;
        b.attr_str(NFTA_HOOK_DEV, dev);
    }
    b.nest_end(hk);
    b.attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
    b.attr_str(NFTA_CHAIN_TYPE, "filter");
    b.end_msg(m);
    Ok(())
}

/// What the rules of one base chain share.
struct RuleCtx<'a> {
    table: &'a str,
    chain: &'a str,
    /// The point's label: its counters' prefix and the NFLOG prefix of its packets.
    label: &'a str,
    spec: &'a RuleSpec<'a>,
}

/// One conjunction as a rule: its sets first, then the matches and the capture tail
/// (counters, sampling, `log` with the point's label as prefix, `return`).
fn rule(
    b: &mut MsgBuilder,
    seq: &mut Seq,
    set_id: &mut u32,
    ctx: &RuleCtx<'_>,
    conj: &Conjunction,
) -> Result<(), Error> {
    let RuleCtx {
        table,
        chain,
        label,
        spec,
    } = *ctx;
    let unencodable = |e: expr::Unencodable| Error::Unencodable { what: e.0 };
    let mut sets = expr::declare_sets(b, table, &conj.matches, set_id, seq).map_err(unencodable)?;
    let m = b.begin_msg(
        msg_type(NFT_MSG_NEWRULE),
        CREATE | codec::NLM_F_APPEND,
        seq.fresh(),
        NFPROTO_INET,
        0,
    );
    b.attr_str(NFTA_RULE_TABLE, table);
    b.attr_str(NFTA_RULE_CHAIN, chain);
    let exprs = b.nest_begin(NFTA_RULE_EXPRESSIONS);
    for mt in &conj.matches {
        expr::encode_match(b, mt, &mut sets).map_err(unencodable)?;
    }
    let count = |b: &mut MsgBuilder, kind: &str| match spec.counting {
        Counting::Objects => expr::counter_ref(b, &counter_name(kind, label)),
        Counting::InRule => expr::counter(b),
    };
    if let Some(n) = spec.sample_one_in {
        count(b, COUNTER_SEEN);
        expr::sample_one_in(b, n);
    }
    count(b, COUNTER_LOGGED);
    expr::log(b, spec.group, spec.snaplen, Some(label));
    expr::return_(b);
    b.nest_end(exprs);
    b.end_msg(m);
    Ok(())
}

/// The batch that flushes and deletes `chains` of `table`: no more packets are logged, and the
/// counters stay readable.
pub fn detach_batch(table: &str, chains: &[String], seq: &mut Seq) -> Batch {
    // Per chain: flush its rules, then delete it; each message names the table and the
    // chain with its own attribute ids.
    const STEPS: [(u16, u16, u16); 2] = [
        (NFT_MSG_DELRULE, NFTA_RULE_TABLE, NFTA_RULE_CHAIN),
        (NFT_MSG_DELCHAIN, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME),
    ];
    framed(seq, |b, seq| {
        for chain in chains {
            for (ty, table_attr, chain_attr) in STEPS {
                let m = b.begin_msg(msg_type(ty), CHANGE, seq.fresh(), NFPROTO_INET, 0);
                b.attr_str(table_attr, table);
                b.attr_str(chain_attr, chain);
                b.end_msg(m);
            }
        }
    })
    .0
}

/// The batch that deletes `table` with everything in it.
pub fn remove_batch(table: &str, seq: &mut Seq) -> Batch {
    framed(seq, |b, seq| {
        let m = b.begin_msg(
            msg_type(NFT_MSG_DELTABLE),
            CHANGE,
            seq.fresh(),
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_TABLE_NAME, table);
        b.end_msg(m);
    })
    .0
}

/// The request for counter object `counter` of `table` (outside any batch), numbered `seq`.
pub fn counter_request(table: &str, counter: &str, seq: u32) -> Vec<u8> {
    let mut b = MsgBuilder::new();
    let m = b.begin_msg(msg_type(NFT_MSG_GETOBJ), CHANGE, seq, NFPROTO_INET, 0);
    b.attr_str(NFTA_OBJ_TABLE, table);
    b.attr_str(NFTA_OBJ_NAME, counter);
    b.attr_be32(NFTA_OBJ_TYPE, expr::NFT_OBJECT_COUNTER);
    b.end_msg(m);
    b.into_bytes()
}

/// The request dumping every rule of `table` (outside any batch), numbered `seq`: how the
/// in-rule counters ([`Counting::InRule`]) are read.
pub fn rules_request(table: &str, seq: u32) -> Vec<u8> {
    let mut b = MsgBuilder::new();
    let m = b.begin_msg(
        msg_type(NFT_MSG_GETRULE),
        codec::NLM_F_REQUEST | codec::NLM_F_DUMP,
        seq,
        NFPROTO_INET,
        0,
    );
    b.attr_str(NFTA_RULE_TABLE, table);
    b.end_msg(m);
    b.into_bytes()
}

/// The chain of a rule and the `(packets, bytes)` of its `counter` expressions in order, from
/// the attributes of the kernel's NEWRULE answer.
pub fn parse_rule_counters(attrs: &[u8]) -> Option<(String, Vec<(u64, u64)>)> {
    let mut chain = None;
    let mut counters = Vec::new();
    for (ty, v) in codec::Attrs::new(attrs) {
        match ty {
            NFTA_RULE_CHAIN => {
                let name = v.split(|&c| c == 0).next().unwrap_or(&[]);
                chain = Some(String::from_utf8_lossy(name).into_owned());
            }
            NFTA_RULE_EXPRESSIONS => {
                for (_, elem) in codec::Attrs::new(v) {
                    if let Some(c) = expr::parse_counter_expr(elem) {
                        counters.push(c);
                    }
                }
            }
            _ => {}
        }
    }
    Some((chain?, counters))
}

/// `(packets, bytes)` of a counter object, from the attributes of the kernel's NEWOBJ answer.
pub fn parse_counter(attrs: &[u8]) -> Option<(u64, u64)> {
    let data = codec::Attrs::new(attrs)
        .find(|(ty, _)| *ty == NFTA_OBJ_DATA)?
        .1;
    let mut packets = None;
    let mut bytes = None;
    for (ty, v) in codec::Attrs::new(data) {
        match ty {
            NFTA_COUNTER_PACKETS => packets = codec::be64(v),
            NFTA_COUNTER_BYTES => bytes = codec::be64(v),
            _ => {}
        }
    }
    Some((packets?, bytes.unwrap_or(0)))
}

/// The message type of an nf_tables message `nft`.
pub fn msg_type(nft: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | nft
}

/// `p0_logged`, `p0_seen`: a point's counter of `kind`.
pub fn counter_name(kind: &str, label: &str) -> String {
    format!("{label}_{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_filter::ir::Match;

    fn spec(filter: &[Conjunction]) -> RuleSpec<'_> {
        RuleSpec {
            filter,
            group: 7,
            snaplen: 64,
            sample_one_in: None,
            counting: Counting::Objects,
        }
    }

    #[test]
    fn an_ingress_hook_without_a_device_is_refused_by_name() {
        let filter = [Conjunction {
            matches: vec![Match::L4Proto {
                proto: 6,
                negate: false,
            }],
        }];
        let points = [PointRules {
            label: "p3".into(),
            hooks: vec![Hook {
                hook: HookNum::Ingress,
                priority: 0,
                device: None,
            }],
        }];
        let err = install_batch("t", &points, &spec(&filter), &mut Seq::after(1)).unwrap_err();
        assert!(
            err.to_string()
                .contains("ingress hook needs a device (point p3)"),
            "{err}"
        );
    }

    #[test]
    fn batches_number_on_from_the_same_counter_and_ack_all_but_the_framing() {
        let filter = [Conjunction { matches: vec![] }];
        let points = [PointRules {
            label: "p0".into(),
            hooks: vec![Hook {
                hook: HookNum::Input,
                priority: 0,
                device: None,
            }],
        }];
        let mut seq = Seq::after(1);
        let install = install_batch("t", &points, &spec(&filter), &mut seq).unwrap();
        // begin 2, table 3, counter 4, chain 5, rule 6, end 7.
        assert_eq!(install.batch.acked, 3..=6);
        assert_eq!(install.chains, ["p0_input_0"]);
        let detach = detach_batch("t", &install.chains, &mut seq);
        // begin 8, flush 9, delete 10, end 11.
        assert_eq!(detach.acked, 9..=10);
        assert_eq!(seq.last(), 11);
    }
}
