//! The NFLOG wire format, apart from the socket: config requests built from typed attributes,
//! and the in-place parser of packet batches. Pure, so both are tested without root against
//! bytes recorded from the kernel (`tests/golden.rs`).

use crate::codec::{self, Attrs, MsgBuilder, Msgs};

pub(crate) const NFNL_SUBSYS_ULOG: u16 = 4;
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
/// `NFULNL_CFG_F_SEQ`: number the instance's packets, so gaps count losses exactly.
pub const NFULNL_CFG_F_SEQ: u16 = 1;
/// The kernel refuses larger copy ranges: the attribute length is 16 bits.
pub const MAX_SNAPLEN: u32 = 0xffff - 4;

const NFULA_PACKET_HDR: u16 = 1;
const NFULA_TIMESTAMP: u16 = 3;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NFULA_SEQ: u16 = 12;

/// The sequence numbers of the reader's requests: bind, configure, unbind.
pub const SEQ_BIND: u32 = 1;
pub const SEQ_CONFIGURE: u32 = 2;
pub const SEQ_UNBIND: u32 = 3;

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

/// One attribute of an NFLOG config message, typed; [`config_msg`] encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAttr {
    /// Binds the sending socket to the group (the kernel creates the instance).
    Bind,
    /// Drops the group's instance.
    Unbind,
    /// Copies each packet, at most `range` bytes of it (capped at [`MAX_SNAPLEN`]).
    CopyPacket { range: u32 },
    /// Instance flags, e.g. [`NFULNL_CFG_F_SEQ`].
    Flags(u16),
    /// The kernel's batch buffer in bytes.
    NlBufSiz(u32),
    /// Flush a batch once it holds this many packets.
    QThresh(u32),
    /// Flush a partial batch after this many hundredths of a second.
    TimeoutCs(u32),
}

impl ConfigAttr {
    fn encode(self, b: &mut MsgBuilder) {
        match self {
            Self::Bind => b.attr(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]),
            Self::Unbind => b.attr(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_UNBIND]),
            Self::CopyPacket { range } => {
                // struct nfulnl_msg_config_mode: be32 copy_range, u8 mode, u8 pad.
                let mut mode = [0u8; 6];
                mode[..4].copy_from_slice(&range.min(MAX_SNAPLEN).to_be_bytes());
                mode[4] = NFULNL_COPY_PACKET;
                b.attr(NFULA_CFG_MODE, &mode);
            }
            Self::Flags(f) => b.attr_be16(NFULA_CFG_FLAGS, f),
            Self::NlBufSiz(v) => b.attr_be32(NFULA_CFG_NLBUFSIZ, v),
            Self::QThresh(v) => b.attr_be32(NFULA_CFG_QTHRESH, v),
            Self::TimeoutCs(v) => b.attr_be32(NFULA_CFG_TIMEOUT, v),
        }
    }
}

/// One config message for `group` carrying `attrs` in order; `ack` asks for the kernel's answer.
pub fn config_msg(group: u16, seq: u32, ack: bool, attrs: &[ConfigAttr]) -> Vec<u8> {
    let mut flags = codec::NLM_F_REQUEST;
    if ack {
        flags |= codec::NLM_F_ACK;
    }
    let mut b = MsgBuilder::new();
    let m = b.begin_msg(config_type(), flags, seq, 0, group);
    for a in attrs {
        a.encode(&mut b);
    }
    b.end_msg(m);
    b.into_bytes()
}

/// The bind request the reader sends first.
pub fn bind_request(group: u16) -> Vec<u8> {
    config_msg(group, SEQ_BIND, true, &[ConfigAttr::Bind])
}

/// The request that tunes the bound instance as `cfg` says.
pub fn configure_request(cfg: &NflogConfig) -> Vec<u8> {
    config_msg(
        cfg.group,
        SEQ_CONFIGURE,
        true,
        &[
            ConfigAttr::CopyPacket { range: cfg.snaplen },
            ConfigAttr::Flags(NFULNL_CFG_F_SEQ),
            ConfigAttr::NlBufSiz(cfg.nlbufsiz),
            ConfigAttr::QThresh(cfg.qthresh),
            ConfigAttr::TimeoutCs(cfg.timeout_cs),
        ],
    )
}

/// The unbind request (not acknowledged: the socket closes right after).
pub fn unbind_request(group: u16) -> Vec<u8> {
    config_msg(group, SEQ_UNBIND, false, &[ConfigAttr::Unbind])
}

fn config_type() -> u16 {
    (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
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

/// Iterator over the packets of one batch; skips `NLMSG_DONE` and anything that is not a packet.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    msgs: Msgs<'a>,
}

impl<'a> Packets<'a> {
    /// The packets of the received batch `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            msgs: Msgs::new(buf),
        }
    }
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
    let attrs = body.get(codec::NFGENMSG_LEN..)?;
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
                let sec = codec::be64(v)?;
                let usec = codec::be64(v.get(8..)?)?;
                p.timestamp_ns = Some(
                    sec.saturating_mul(1_000_000_000)
                        .saturating_add(usec.saturating_mul(1000)),
                );
            }
            NFULA_IFINDEX_INDEV => p.indev = codec::be32(v),
            NFULA_IFINDEX_OUTDEV => p.outdev = codec::be32(v),
            NFULA_PAYLOAD => {
                p.payload = v;
                have_payload = true;
            }
            NFULA_PREFIX => p.prefix = Some(v.split(|&c| c == 0).next().unwrap_or(v)),
            NFULA_SEQ => p.seq = codec::be32(v),
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
        let m = b.begin_msg(codec::NLMSG_DONE, codec::NLM_F_MULTI, 0, 0, 0);
        b.end_msg(m);
        buf.extend_from_slice(b.bytes());
        let ps: Vec<_> = Packets::new(&buf).collect();
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
        let p = parse_packet(&b.bytes()[codec::NLMSG_HDRLEN..]).unwrap();
        assert_eq!(p.timestamp_ns, Some(u64::MAX));
    }

    #[test]
    fn truncated_batches_never_panic() {
        let buf = packet_msg(1, &[0x45; 64]);
        for cut in 0..buf.len() {
            let _ = Packets::new(&buf[..cut]).count();
            let _ = parse_packet(&buf[codec::NLMSG_HDRLEN.min(cut)..cut]);
        }
    }
}
