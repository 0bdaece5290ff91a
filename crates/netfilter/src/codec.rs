//! The netlink wire format, apart from any socket: a message builder with nested attributes,
//! nfnetlink batch framing, and in-place parsers for messages, attributes and error answers.
//!
//! Pure functions over byte buffers, so every message the crate sends can be built and
//! compared byte for byte without root (`tests/golden.rs`). Hand-written because the hot
//! path (NFLOG) must parse in place and the configuration path needs only a handful of shapes.

pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;
pub const NLA_HDRLEN: usize = 4;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_ROOT | NLM_F_MATCH`: every object the request's attributes select.
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NLMSGERR_ATTR_MSG`: the extended ACK's text.
const NLMSGERR_ATTR_MSG: u16 = 1;

pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The sequence numbers of one socket's requests. Answers are matched to requests by them, so
/// every message gets a fresh one; kept apart from the socket so a batch is a pure function
/// of its inputs and this counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seq(u32);

impl Seq {
    /// A counter whose first [`Seq::fresh`] is `last + 1`.
    pub fn after(last: u32) -> Self {
        Self(last)
    }

    pub fn fresh(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }

    /// The number [`Seq::fresh`] handed out last.
    pub fn last(&self) -> u32 {
        self.0
    }
}

/// Builds netlink messages into one buffer (a batch is several messages back to back).
#[derive(Debug, Default)]
pub struct MsgBuilder {
    buf: Vec<u8>,
}

impl MsgBuilder {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Starts a message with an nfgenmsg header. Returns its start offset for [`Self::end_msg`].
    /// The header's port id stays 0: the kernel fills in the sender's.
    pub fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in end_msg
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills it
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    pub fn end_msg(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (NLA_HDRLEN + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    pub fn attr_u8(&mut self, ty: u16, v: u8) {
        self.attr(ty, &[v]);
    }
    pub fn attr_be16(&mut self, ty: u16, v: u16) {
        self.attr(ty, &v.to_be_bytes());
    }
    pub fn attr_be32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }
    /// A NUL-terminated string attribute, as nf_tables expects names.
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    pub fn nest_begin(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub fn nest_end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Opens an nfnetlink batch for subsystem `subsys`: the kernel applies the messages up to
    /// [`Self::batch_end`] all or none. The begin message itself is not acknowledged.
    pub fn batch_begin(&mut self, seq: u32, subsys: u16) {
        let m = self.begin_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, subsys);
        self.end_msg(m);
    }

    /// Closes the batch opened by [`Self::batch_begin`] (not acknowledged either).
    pub fn batch_end(&mut self, seq: u32, subsys: u16) {
        let m = self.begin_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, subsys);
        self.end_msg(m);
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

/// A netlink message seen in place in a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the 16-byte nlmsghdr.
    pub body: &'a [u8],
}

/// Iterates the messages of one receive buffer. Stops at the first malformed header.
#[derive(Debug, Clone)]
pub struct Msgs<'a> {
    rest: &'a [u8],
}

impl<'a> Msgs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }
}

impl<'a> Iterator for Msgs<'a> {
    type Item = Msg<'a>;
    fn next(&mut self) -> Option<Msg<'a>> {
        let b = self.rest;
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            self.rest = &[];
            return None;
        }
        let msg = Msg {
            ty: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            body: &b[NLMSG_HDRLEN..len],
        };
        self.rest = b.get(align4(len)..).unwrap_or(&[]);
        Some(msg)
    }
}

/// Iterates netlink attributes in place: `(type without flags, payload)`.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let b = self.rest;
        if b.len() < NLA_HDRLEN {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        if len < NLA_HDRLEN || len > b.len() {
            self.rest = &[];
            return None;
        }
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        let data = &b[NLA_HDRLEN..len];
        self.rest = b.get(align4(len)..).unwrap_or(&[]);
        Some((ty, data))
    }
}

pub fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}
pub fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}
pub fn be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// The errno carried by an NLMSG_ERROR body (0 is an ACK), and the extended-ack message if any.
pub fn parse_error(body: &[u8]) -> Option<(i32, Option<String>)> {
    let code = i32::from_ne_bytes(body.get(..4)?.try_into().ok()?);
    // With NETLINK_EXT_ACK the echoed request header (and maybe payload) follows, then TLVs.
    let mut msg = None;
    if let Some(echo) = body.get(4..4 + NLMSG_HDRLEN) {
        let echo_len = u32::from_ne_bytes(echo[..4].try_into().ok()?) as usize;
        let capped = body.len() >= 4 + echo_len; // NLM_F_CAPPED not set: payload echoed too
        let tlv_start = if capped {
            4 + align4(echo_len)
        } else {
            4 + NLMSG_HDRLEN
        };
        if let Some(tlvs) = body.get(tlv_start..) {
            for (ty, data) in Attrs::new(tlvs) {
                if ty == NLMSGERR_ATTR_MSG {
                    let s = data.split(|&c| c == 0).next().unwrap_or(&[]);
                    msg = Some(String::from_utf8_lossy(s).into_owned());
                }
            }
        }
    }
    Some((code, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_parser_round_trip_nested_attrs() {
        let mut b = MsgBuilder::new();
        let m = b.begin_msg(0x0a00, NLM_F_REQUEST, 7, 1, 0);
        b.attr_str(1, "edgecap");
        let n = b.nest_begin(4);
        b.attr_be32(1, 3);
        b.attr_be32(2, (-310i32) as u32);
        b.nest_end(n);
        b.end_msg(m);
        let msgs: Vec<_> = Msgs::new(b.bytes()).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].seq, 7);
        let attrs: Vec<_> = Attrs::new(&msgs[0].body[NFGENMSG_LEN..]).collect();
        assert_eq!(attrs[0], (1, &b"edgecap\0"[..]));
        assert_eq!(attrs[1].0, 4);
        let inner: Vec<_> = Attrs::new(attrs[1].1).collect();
        assert_eq!(be32(inner[0].1), Some(3));
        assert_eq!(be32(inner[1].1).map(|v| v as i32), Some(-310));
    }

    #[test]
    fn batch_framing_is_two_bare_messages_naming_the_subsystem() {
        let mut b = MsgBuilder::new();
        b.batch_begin(5, 10);
        b.batch_end(6, 10);
        let msgs: Vec<_> = Msgs::new(b.bytes()).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].ty, msgs[0].seq), (NFNL_MSG_BATCH_BEGIN, 5));
        assert_eq!((msgs[1].ty, msgs[1].seq), (NFNL_MSG_BATCH_END, 6));
        // nfgenmsg: family 0, version 0, res_id = subsystem (big endian).
        assert_eq!(msgs[0].body, &[0, 0, 0, 10]);
        assert_eq!(msgs[0].flags, NLM_F_REQUEST);
    }

    #[test]
    fn sequence_numbers_start_after_the_given_one_and_wrap() {
        let mut s = Seq::after(1);
        assert_eq!((s.fresh(), s.fresh(), s.last()), (2, 3, 3));
        let mut s = Seq::after(u32::MAX);
        assert_eq!(s.fresh(), 0);
    }

    #[test]
    fn parsers_are_total_on_garbage() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = Msgs::new(&junk).count();
            let _ = Attrs::new(&junk).count();
            let _ = parse_error(&junk);
        }
        // A length field pointing past the end must not be followed.
        let mut b = vec![0xffu8, 0xff, 0, 0];
        b.extend_from_slice(&[0; 12]);
        assert_eq!(Msgs::new(&b).count(), 0);
    }
}
