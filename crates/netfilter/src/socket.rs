//! The netlink socket: the only file of the crate with `unsafe` (socket, bind, getsockname,
//! setsockopt, sendto, poll, recv), each call allowed on its own function. It only moves bytes;
//! what they mean is [`crate::codec`]'s business.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A bound `AF_NETLINK` / `NETLINK_NETFILTER` socket.
#[derive(Debug)]
pub struct NlSocket {
    fd: OwnedFd,
    portid: u32,
    /// Overrun reports (ENOBUFS) seen by [`NlSocket::recv_until`].
    overruns: u64,
}

impl NlSocket {
    #[allow(unsafe_code)]
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

    #[allow(unsafe_code)]
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
    #[allow(unsafe_code)]
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

    #[allow(unsafe_code)]
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
    #[allow(unsafe_code)]
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
    #[allow(unsafe_code)]
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
