//! nf_tables expressions: how one compiled filter [`Match`] becomes register loads and
//! comparisons, and the capture tail (counters, sampling, `log`, `return`).
//!
//! Every expression is encoded as `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { .. } }`.
//! Constants are from `include/uapi/linux/netfilter/nf_tables.h`.

use std::net::IpAddr;

use edgecap_filter::ir::{Base, CmpOp, Dir, Family, Match, Payload, Test};

use crate::batch::msg_type;
use crate::codec::{self, MsgBuilder, Seq};

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

const NFT_REG_VERDICT: u32 = 0;
/// The first 16-byte general register; wide enough for an IPv6 address.
const NFT_REG_1: u32 = 1;

const NFT_META_LEN: u32 = 0;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_META_PRANDOM: u32 = 24;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;

const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;

const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;

const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_CMP_LT: u32 = 2;
const NFT_CMP_LTE: u32 = 3;
const NFT_CMP_GT: u32 = 4;
const NFT_CMP_GTE: u32 = 5;

const NFTA_BYTEORDER_SREG: u16 = 1;
const NFTA_BYTEORDER_DREG: u16 = 2;
const NFTA_BYTEORDER_OP: u16 = 3;
const NFTA_BYTEORDER_LEN: u16 = 4;
const NFTA_BYTEORDER_SIZE: u16 = 5;
const NFT_BYTEORDER_HTON: u32 = 1;

const NFTA_RANGE_SREG: u16 = 1;
const NFTA_RANGE_OP: u16 = 2;
const NFTA_RANGE_FROM_DATA: u16 = 3;
const NFTA_RANGE_TO_DATA: u16 = 4;
const NFT_RANGE_EQ: u32 = 0;
const NFT_RANGE_NEQ: u32 = 1;

const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_SET_ID: u16 = 4;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFT_LOOKUP_F_INV: u32 = 1;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NFT_SET_ANONYMOUS: u32 = 1;
const NFT_SET_CONSTANT: u32 = 2;
/// nft's `integer` datatype, what it gives the key of a set over raw payload bytes.
const NFT_TYPE_INTEGER: u32 = 4;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
pub(crate) const NFT_MSG_NEWSET: u16 = 9;
pub(crate) const NFT_MSG_NEWSETELEM: u16 = 12;
/// The kernel replaces `%d` with the first free number, as it does for nft's own sets.
const ANONYMOUS_SET_NAME: &str = "__set%d";

const NFTA_OBJREF_IMM_TYPE: u16 = 1;
const NFTA_OBJREF_IMM_NAME: u16 = 2;
pub(crate) const NFT_OBJECT_COUNTER: u32 = 1;

const NFTA_LOG_GROUP: u16 = 1;
const NFTA_LOG_PREFIX: u16 = 2;
const NFTA_LOG_SNAPLEN: u16 = 3;

const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_RETURN: i32 = -5;

const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

struct Expr<'b> {
    b: &'b mut MsgBuilder,
    elem: usize,
    data: usize,
}

impl<'b> Expr<'b> {
    fn begin(b: &'b mut MsgBuilder, name: &str) -> Self {
        let elem = b.nest_begin(NFTA_LIST_ELEM);
        b.attr_str(NFTA_EXPR_NAME, name);
        let data = b.nest_begin(NFTA_EXPR_DATA);
        Self { b, elem, data }
    }
    fn end(self) {
        self.b.nest_end(self.data);
        self.b.nest_end(self.elem);
    }
    fn data_value(&mut self, ty: u16, value: &[u8]) {
        let n = self.b.nest_begin(ty);
        self.b.attr(NFTA_DATA_VALUE, value);
        self.b.nest_end(n);
    }
}

fn meta(b: &mut MsgBuilder, key: u32) {
    let e = Expr::begin(b, "meta");
    e.b.attr_be32(NFTA_META_KEY, key);
    e.b.attr_be32(NFTA_META_DREG, NFT_REG_1);
    e.end();
}

fn payload(b: &mut MsgBuilder, base: u32, offset: u32, len: u32) {
    let e = Expr::begin(b, "payload");
    e.b.attr_be32(NFTA_PAYLOAD_DREG, NFT_REG_1);
    e.b.attr_be32(NFTA_PAYLOAD_BASE, base);
    e.b.attr_be32(NFTA_PAYLOAD_OFFSET, offset);
    e.b.attr_be32(NFTA_PAYLOAD_LEN, len);
    e.end();
}

fn cmp(b: &mut MsgBuilder, op: u32, value: &[u8]) {
    let mut e = Expr::begin(b, "cmp");
    e.b.attr_be32(NFTA_CMP_SREG, NFT_REG_1);
    e.b.attr_be32(NFTA_CMP_OP, op);
    e.data_value(NFTA_CMP_DATA, value);
    e.end();
}

fn mask(b: &mut MsgBuilder, mask: &[u8]) {
    let mut e = Expr::begin(b, "bitwise");
    e.b.attr_be32(NFTA_BITWISE_SREG, NFT_REG_1);
    e.b.attr_be32(NFTA_BITWISE_DREG, NFT_REG_1);
    e.b.attr_be32(NFTA_BITWISE_LEN, mask.len() as u32);
    e.data_value(NFTA_BITWISE_MASK, mask);
    e.data_value(NFTA_BITWISE_XOR, &vec![0u8; mask.len()]);
    e.end();
}

fn range(b: &mut MsgBuilder, negate: bool, from: &[u8], to: &[u8]) {
    let mut e = Expr::begin(b, "range");
    e.b.attr_be32(NFTA_RANGE_SREG, NFT_REG_1);
    e.b.attr_be32(
        NFTA_RANGE_OP,
        if negate { NFT_RANGE_NEQ } else { NFT_RANGE_EQ },
    );
    e.data_value(NFTA_RANGE_FROM_DATA, from);
    e.data_value(NFTA_RANGE_TO_DATA, to);
    e.end();
}

fn op(negate: bool) -> u32 {
    if negate { NFT_CMP_NEQ } else { NFT_CMP_EQ }
}

/// Why a match cannot be encoded (the filter crate promises these never reach us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unencodable(pub String);

fn cmp_code(op: CmpOp) -> u32 {
    match op {
        CmpOp::Eq => NFT_CMP_EQ,
        CmpOp::Ne => NFT_CMP_NEQ,
        CmpOp::Lt => NFT_CMP_LT,
        CmpOp::Le => NFT_CMP_LTE,
        CmpOp::Gt => NFT_CMP_GT,
        CmpOp::Ge => NFT_CMP_GTE,
    }
}

/// `value` as the `size` big-endian bytes a payload load of that size leaves in the register.
fn be_bytes(value: u32, size: u8) -> Result<Vec<u8>, Unencodable> {
    let all = value.to_be_bytes();
    let size = usize::from(size);
    if !matches!(size, 1 | 2 | 4) || (size < 4 && value >> (8 * size) != 0) {
        return Err(Unencodable(format!(
            "value {value:#x} in a {size}-byte payload field"
        )));
    }
    Ok(all[4 - size..].to_vec())
}

/// The anonymous sets of one rule, in the order its matches use them: each is declared (and
/// filled) by [`declare_sets`] before the rule, and looked up by id from the rule.
#[derive(Debug, Default)]
pub(crate) struct RuleSets {
    ids: std::collections::VecDeque<u32>,
}

/// Emits, for every set-valued match of a rule, the messages that create an anonymous constant
/// set in `table` and add its elements, each with a batch-unique id from `next_id`.
pub(crate) fn declare_sets(
    b: &mut MsgBuilder,
    table: &str,
    matches: &[Match],
    next_id: &mut u32,
    seq: &mut Seq,
) -> Result<RuleSets, Unencodable> {
    let mut sets = RuleSets::default();
    for m in matches {
        let Match::Payload(Payload {
            size,
            test: Test::Set { values, .. },
            ..
        }) = m
        else {
            continue;
        };
        let elements: Vec<Vec<u8>> = values
            .iter()
            .map(|v| be_bytes(*v, *size))
            .collect::<Result<_, _>>()?;
        if elements.is_empty() {
            return Err(Unencodable("an empty set".into()));
        }
        *next_id += 1;
        let id = *next_id;
        let create = codec::NLM_F_REQUEST | codec::NLM_F_CREATE | codec::NLM_F_ACK;
        let msg = b.begin_msg(
            msg_type(NFT_MSG_NEWSET),
            create,
            seq.fresh(),
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_SET_TABLE, table);
        b.attr_str(NFTA_SET_NAME, ANONYMOUS_SET_NAME);
        b.attr_be32(NFTA_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
        b.attr_be32(NFTA_SET_KEY_TYPE, NFT_TYPE_INTEGER);
        b.attr_be32(NFTA_SET_KEY_LEN, u32::from(*size));
        b.attr_be32(NFTA_SET_ID, id);
        let desc = b.nest_begin(NFTA_SET_DESC);
        b.attr_be32(NFTA_SET_DESC_SIZE, elements.len() as u32);
        b.nest_end(desc);
        b.end_msg(msg);

        let msg = b.begin_msg(
            msg_type(NFT_MSG_NEWSETELEM),
            create,
            seq.fresh(),
            NFPROTO_INET,
            0,
        );
        b.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        b.attr_str(NFTA_SET_ELEM_LIST_SET, ANONYMOUS_SET_NAME);
        b.attr_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
        let list = b.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        for e in &elements {
            let elem = b.nest_begin(NFTA_LIST_ELEM);
            let key = b.nest_begin(NFTA_SET_ELEM_KEY);
            b.attr(NFTA_DATA_VALUE, e);
            b.nest_end(key);
            b.nest_end(elem);
        }
        b.nest_end(list);
        b.end_msg(msg);
        sets.ids.push_back(id);
    }
    Ok(sets)
}

fn lookup(b: &mut MsgBuilder, id: u32, negate: bool) {
    let e = Expr::begin(b, "lookup");
    e.b.attr_str(NFTA_LOOKUP_SET, ANONYMOUS_SET_NAME);
    e.b.attr_be32(NFTA_LOOKUP_SREG, NFT_REG_1);
    e.b.attr_be32(NFTA_LOOKUP_SET_ID, id);
    if negate {
        e.b.attr_be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    }
    e.end();
}

fn encode_payload(b: &mut MsgBuilder, p: &Payload, sets: &mut RuleSets) -> Result<(), Unencodable> {
    let base = match p.base {
        Base::Network => NFT_PAYLOAD_NETWORK_HEADER,
        Base::Transport => NFT_PAYLOAD_TRANSPORT_HEADER,
    };
    payload(b, base, u32::from(p.offset), u32::from(p.size));
    if let Some(m) = p.mask {
        mask(b, &be_bytes(m, p.size)?);
    }
    match &p.test {
        Test::Cmp { op, value } => cmp(b, cmp_code(*op), &be_bytes(*value, p.size)?),
        Test::Range { lo, hi, negate } => {
            range(b, *negate, &be_bytes(*lo, p.size)?, &be_bytes(*hi, p.size)?)
        }
        Test::Set { negate, .. } => {
            let id = sets
                .ids
                .pop_front()
                .ok_or_else(|| Unencodable("a set lookup without its set".into()))?;
            lookup(b, id, *negate);
        }
    }
    Ok(())
}

/// Encodes one filter match as expressions. Set lookups take their sets, in order, from
/// `sets` (see [`declare_sets`]).
pub(crate) fn encode_match(
    b: &mut MsgBuilder,
    m: &Match,
    sets: &mut RuleSets,
) -> Result<(), Unencodable> {
    match m {
        Match::Family(f) => {
            meta(b, NFT_META_NFPROTO);
            let v = match f {
                Family::V4 => NFPROTO_IPV4,
                Family::V6 => NFPROTO_IPV6,
            };
            cmp(b, NFT_CMP_EQ, &[v]);
        }
        Match::L4Proto { proto, negate } => {
            meta(b, NFT_META_L4PROTO);
            cmp(b, op(*negate), &[*proto]);
        }
        Match::Addr {
            dir,
            addr,
            prefix_len,
            negate,
        } => {
            let (bytes, offset): (Vec<u8>, u32) = match (addr, dir) {
                (IpAddr::V4(a), Dir::Src) => (a.octets().to_vec(), 12),
                (IpAddr::V4(a), Dir::Dst) => (a.octets().to_vec(), 16),
                (IpAddr::V6(a), Dir::Src) => (a.octets().to_vec(), 8),
                (IpAddr::V6(a), Dir::Dst) => (a.octets().to_vec(), 24),
            };
            let plen = usize::from(*prefix_len);
            if plen == 0 || plen > bytes.len() * 8 {
                return Err(Unencodable(format!("prefix length {plen} for {addr}")));
            }
            // As nft does (so `nft list` prints `ip saddr P/N`): a byte-aligned prefix loads
            // only its bytes; any other loads the whole address and masks it.
            if plen % 8 == 0 {
                let nbytes = plen / 8;
                payload(b, NFT_PAYLOAD_NETWORK_HEADER, offset, nbytes as u32);
                cmp(b, op(*negate), &bytes[..nbytes]);
            } else {
                payload(b, NFT_PAYLOAD_NETWORK_HEADER, offset, bytes.len() as u32);
                let m: Vec<u8> = (0..bytes.len())
                    .map(|i| {
                        let bits = plen.saturating_sub(i * 8).min(8);
                        if bits == 0 { 0 } else { 0xffu8 << (8 - bits) }
                    })
                    .collect();
                mask(b, &m);
                cmp(b, op(*negate), &bytes);
            }
        }
        Match::Port {
            dir,
            lo,
            hi,
            negate,
        } => {
            let offset = match dir {
                Dir::Src => 0,
                Dir::Dst => 2,
            };
            payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, offset, 2);
            if lo == hi {
                cmp(b, op(*negate), &lo.to_be_bytes());
            } else {
                range(b, *negate, &lo.to_be_bytes(), &hi.to_be_bytes());
            }
        }
        Match::TcpFlags {
            mask: m,
            value,
            negate,
        } => {
            payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
            if *m != 0xff {
                mask(b, &[*m]);
            }
            cmp(b, op(*negate), &[*value]);
        }
        Match::Length { op: o, value } => {
            meta(b, NFT_META_LEN);
            hton32(b);
            cmp(b, cmp_code(*o), &value.to_be_bytes());
        }
        Match::Payload(p) => encode_payload(b, p, sets)?,
    }
    Ok(())
}

/// Converts the 4-byte host-order value in the register to network order, so ordered
/// comparisons (which compare bytes) see the numeric order.
fn hton32(b: &mut MsgBuilder) {
    let e = Expr::begin(b, "byteorder");
    e.b.attr_be32(NFTA_BYTEORDER_SREG, NFT_REG_1);
    e.b.attr_be32(NFTA_BYTEORDER_DREG, NFT_REG_1);
    e.b.attr_be32(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON);
    e.b.attr_be32(NFTA_BYTEORDER_LEN, 4);
    e.b.attr_be32(NFTA_BYTEORDER_SIZE, 4);
    e.end();
}

/// `counter name "NAME"`: a reference to a named counter object of the table.
pub(crate) fn counter_ref(b: &mut MsgBuilder, name: &str) {
    let e = Expr::begin(b, "objref");
    e.b.attr_be32(NFTA_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
    e.b.attr_str(NFTA_OBJREF_IMM_NAME, name);
    e.end();
}

/// `counter`: an anonymous counter in the rule (packets and bytes from zero).
pub(crate) fn counter(b: &mut MsgBuilder) {
    Expr::begin(b, "counter").end();
}

const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

/// `(packets, bytes)` of one listed expression (`NFTA_LIST_ELEM`'s payload) when it is a
/// `counter`.
pub(crate) fn parse_counter_expr(elem: &[u8]) -> Option<(u64, u64)> {
    let mut name = None;
    let mut data = None;
    for (ty, v) in codec::Attrs::new(elem) {
        match ty {
            NFTA_EXPR_NAME => name = Some(v.split(|&c| c == 0).next().unwrap_or(&[])),
            NFTA_EXPR_DATA => data = Some(v),
            _ => {}
        }
    }
    if name? != b"counter" {
        return None;
    }
    let (mut packets, mut bytes) = (None, None);
    for (ty, v) in codec::Attrs::new(data?) {
        match ty {
            NFTA_COUNTER_PACKETS => packets = codec::be64(v),
            NFTA_COUNTER_BYTES => bytes = codec::be64(v),
            _ => {}
        }
    }
    Some((packets?, bytes.unwrap_or(0)))
}

/// `meta random < 2^32 / N`: lets one packet in N through (every packet when N is 1).
///
/// `meta random` loads a fresh random 32-bit value into the register and `cmp lt` compares its
/// four bytes with the bound's as a byte string (`memcmp`), so the bound is written most
/// significant byte first, as `nft` writes it: uniformly random bytes are below a big-endian
/// bound B with probability B / 2^32, whatever the register's byte order. With B = 2^32 / N
/// (rounded down) that is exactly 1 / N for a power of two and within 2^-32 of it otherwise.
/// Both expressions are among those nf_tables calls directly rather than through a function
/// pointer (a retpoline per packet where the kernel mitigates Spectre v2); `numgen random`,
/// which this replaced, is not (see docs/benchmarks.md, "Observer").
pub(crate) fn sample_one_in(b: &mut MsgBuilder, n: u32) {
    let Some(bound) = sample_bound(n) else {
        return;
    };
    meta(b, NFT_META_PRANDOM);
    cmp(b, NFT_CMP_LT, &bound.to_be_bytes());
}

/// The compare's bound for one packet in `n`: `None` when every packet passes (n <= 1).
fn sample_bound(n: u32) -> Option<u32> {
    (n > 1).then(|| ((1u64 << 32) / u64::from(n)) as u32)
}

/// `log group G snaplen S [prefix P]`.
pub(crate) fn log(b: &mut MsgBuilder, group: u16, snaplen: u32, prefix: Option<&str>) {
    let e = Expr::begin(b, "log");
    e.b.attr_be16(NFTA_LOG_GROUP, group);
    e.b.attr_be32(NFTA_LOG_SNAPLEN, snaplen);
    if let Some(p) = prefix {
        e.b.attr_str(NFTA_LOG_PREFIX, p);
    }
    e.end();
}

/// `return`: leaves the chain. In a base chain with policy accept this is exactly the policy,
/// so it changes no verdict; it only stops a packet from being logged by a later rule too.
pub(crate) fn return_(b: &mut MsgBuilder) {
    let e = Expr::begin(b, "immediate");
    e.b.attr_be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    let d = e.b.nest_begin(NFTA_IMMEDIATE_DATA);
    let v = e.b.nest_begin(NFTA_DATA_VERDICT);
    e.b.attr_be32(NFTA_VERDICT_CODE, NFT_RETURN as u32);
    e.b.nest_end(v);
    e.b.nest_end(d);
    e.end();
}

#[cfg(test)]
mod tests {
    use super::sample_bound;

    #[test]
    fn the_sampling_bound_lets_one_packet_in_n_through() {
        // Exactly 1/N of all 2^32 values lie below the bound for a power of two.
        assert_eq!(sample_bound(64), Some(1 << 26));
        assert_eq!(sample_bound(2), Some(1 << 31));
        assert_eq!(sample_bound(65536), Some(1 << 16));
        // Otherwise within one value of 2^32 / N.
        assert_eq!(sample_bound(3), Some(0x5555_5555));
        for n in [3u32, 7, 100, 1000, 65535] {
            let b = u64::from(sample_bound(n).unwrap());
            let exact = (1u64 << 32) as f64 / f64::from(n);
            assert!((b as f64 - exact).abs() < 1.0, "n={n}: {b} vs {exact}");
        }
        // One in one: no compare at all, every packet passes.
        assert_eq!(sample_bound(1), None);
        assert_eq!(sample_bound(0), None);
    }
}
