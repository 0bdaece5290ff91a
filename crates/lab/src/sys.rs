//! The only module with `unsafe`: sending Ethernet frames through an AF_PACKET socket
//! (`send`, `sendmmsg`). Entering a namespace is `edgecap_netns`'s.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn if_index(name: &str) -> io::Result<libc::c_int> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::last_os_error());
    }
    libc::c_int::try_from(idx).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// A send-only AF_PACKET socket bound to one interface of the current thread's namespace.
/// It is bound with protocol 0, so the kernel queues no received packets to it.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket on interface `ifname` (looked up in the calling thread's namespace).
    pub fn open(ifname: &str) -> io::Result<Self> {
        let ifindex = if_index(ifname)?;
        // SAFETY: plain system call without pointers.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd })
    }

    /// Raises the send buffer (SO_SNDBUFFORCE, which needs CAP_NET_ADMIN, else SO_SNDBUF).
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: `value` is a c_int living across the call and the length is its size.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const value).cast::<libc::c_void>(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return Ok(());
            }
        }
        Err(io::Error::last_os_error())
    }

    /// Sends one complete Ethernet frame without blocking.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: the pointer and length describe `frame`, which outlives the call.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast::<libc::c_void>(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Sends the frames with one `sendmmsg` call without blocking; returns how many went out
    /// (possibly fewer than given). An error means the first frame could not be sent.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> io::Result<usize> {
        let mut iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr().cast_mut().cast::<libc::c_void>(),
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain old data; all-zero is a valid value (no name,
                // no control data).
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let count = libc::c_uint::try_from(msgs.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: every mmsghdr points at one iovec in `iovecs`, each describing a frame in
        // `frames`; all of them outlive the call, and the kernel only reads the frames.
        let n = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                count,
                libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}
