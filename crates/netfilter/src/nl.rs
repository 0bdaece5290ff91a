//! A minimal netlink layer: a `NETLINK_NETFILTER` socket, a message builder with nested
//! attributes, and a parser for the replies. Hand-written because the hot path (NFLOG) must
//! parse in place and the configuration path needs only a handful of message shapes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;
pub const NLA_HDRLEN: usize = 4;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A bound `AF_NETLINK` / `NETLINK_NETFILTER` socket.
#[derive(Debug)]
pub struct NlSocket {
    fd: OwnedFd,
    portid: u32,
    /// Overrun reports (ENOBUFS) seen by [`NlSocket::recv_until`].
    overruns: u64,
}

impl NlSocket {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain old data; zero is a valid bit pattern.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: addr is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut bound: libc::sockaddr_nl = addr;
        let mut blen = len;
        // SAFETY: bound/blen describe a writable sockaddr_nl.
        let rc = unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                (&raw mut bound).cast::<libc::sockaddr>(),
                &mut blen,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            portid: bound.nl_pid,
            overruns: 0,
        })
    }

    /// The port id the kernel assigned; owned tables belong to it.
    pub fn portid(&self) -> u32 {
        self.portid
    }

    fn setsockopt_int(&self, level: i32, name: i32, value: i32) -> io::Result<()> {
        // SAFETY: value is a live c_int and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const value).cast::<libc::c_void>(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Sets the receive buffer, bypassing `rmem_max` when we hold CAP_NET_ADMIN
    /// (`SO_RCVBUFFORCE`), else falling back to `SO_RCVBUF`. Returns the size the kernel granted.
    pub fn set_rcvbuf(&self, bytes: usize) -> io::Result<usize> {
        let want = i32::try_from(bytes).unwrap_or(i32::MAX);
        if self
            .setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want)
            .is_err()
        {
            self.setsockopt_int(libc::SOL_SOCKET, libc::SO_RCVBUF, want)?;
        }
        let mut got: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: got/len describe a writable c_int.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw mut got).cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(got).unwrap_or(0))
    }

    /// Sets the send buffer (`SO_SNDBUFFORCE`, else `SO_SNDBUF`): a netlink message larger
    /// than it is refused with EMSGSIZE, and an nftables batch is one message.
    pub fn set_sndbuf(&self, bytes: usize) -> io::Result<()> {
        let want = i32::try_from(bytes).unwrap_or(i32::MAX);
        self.setsockopt_int(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, want)
            .or_else(|_| self.setsockopt_int(libc::SOL_SOCKET, libc::SO_SNDBUF, want))
    }

    /// Asks for extended ACKs so errors carry the kernel's message where it gives one.
    pub fn set_ext_ack(&self) {
        let _ = self.setsockopt_int(libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1);
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl addresses the kernel (pid 0).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        loop {
            // SAFETY: buf is a valid slice; addr is a valid sockaddr_nl.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    0,
                    (&raw const addr).cast::<libc::sockaddr>(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Waits until the socket is readable. `Ok(false)` on timeout or signal.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up: a wait shorter than a millisecond must not become a busy poll(0).
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(err);
        }
        Ok(rc > 0)
    }

    /// Receives one message into `buf`, waiting until `deadline` at most: the one receive loop
    /// of the crate. Returns `(bytes in buf, truncated)`, or `Ok(None)` once the deadline has
    /// passed with nothing to read (a signal does not end the wait early).
    ///
    /// An overrun report (ENOBUFS: the kernel dropped messages because the receive buffer was
    /// full) is counted in [`NlSocket::overruns`] and the receive is retried at once, so what is
    /// still queued behind the report is read, never abandoned.
    pub fn recv_until(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> io::Result<Option<(usize, bool)>> {
        loop {
            match self.recv(buf) {
                Ok(Some(got)) => return Ok(Some(got)),
                Ok(None) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.overruns += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.wait_readable(left)?;
        }
    }

    /// Overrun reports (ENOBUFS) [`NlSocket::recv_until`] has counted on this socket.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// One non-blocking receive. Returns `(bytes in buf, truncated)`; `Ok(None)` when nothing
    /// is queued or a signal interrupted. ENOBUFS is returned as an error for the caller to count.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
        // SAFETY: buf is a valid writable slice of the given length.
        let rc = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        let n = rc as usize;
        if n > buf.len() {
            Ok(Some((buf.len(), true)))
        } else {
            Ok(Some((n, false)))
        }
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

    /// Starts a message with an nfgenmsg header. Returns its start offset for [`Self::end_msg`].
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
                if ty == 1 {
                    // NLMSGERR_ATTR_MSG
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
