//! Errors of the netfilter layer, phrased for the operator who has to act on them.

/// Everything that can go wrong talking to nf_tables or NFLOG.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("permission denied {what}: capturing needs root or CAP_NET_ADMIN (try sudo)")]
    NotPermitted { what: String },
    #[error(
        "NFLOG group {group} is already bound by another process (another capture, ulogd or \
         tcpdump -i nflog:{group}); pick another group or stop that process"
    )]
    GroupBusy { group: u16 },
    #[error(
        "the kernel has no {feature} support ({detail}): load the module (modprobe {module}) or \
         install nftables"
    )]
    Unsupported {
        feature: &'static str,
        module: &'static str,
        detail: String,
    },
    #[error("the kernel refused {what}: {reason}")]
    Kernel { what: String, reason: String },
    #[error("installing nftables table {table}: {source}")]
    Install {
        table: String,
        #[source]
        source: Box<Error>,
    },
    /// A socket call failed; `call` says which (opening, sending to nf_tables, ...).
    #[error("netlink socket, {call}: {source}")]
    Socket {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the kernel's answers were lost: this socket's receive buffer overflowed {overruns} \
         time(s) (ENOBUFS)"
    )]
    AnswersLost { overruns: u64 },
    #[error("unexpected netlink answer: {0}")]
    Protocol(String),
    #[error("filter cannot be expressed in nftables: {what}")]
    Unencodable { what: String },
}

impl Error {
    /// Wraps a failed socket call, naming it; `map_err(Error::socket("sending ..."))`.
    pub(crate) fn socket(call: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Error::Socket { call, source }
    }

    pub(crate) fn context_install(self, table: &str) -> Self {
        match self {
            // These already say everything an operator needs.
            e @ (Error::NotPermitted { .. } | Error::Unsupported { .. }) => e,
            e => Error::Install {
                table: table.to_owned(),
                source: Box::new(e),
            },
        }
    }
}

/// Maps a kernel errno (positive) from a netlink ACK to an operator-facing error.
pub(crate) fn kernel_error(errno: i32, text: Option<String>, what: &str) -> Error {
    let os = std::io::Error::from_raw_os_error(errno).to_string();
    let reason = match text {
        Some(t) if !t.is_empty() => format!("{os} ({t})"),
        _ => os,
    };
    match errno {
        libc::EPERM | libc::EACCES => Error::NotPermitted {
            what: what.to_owned(),
        },
        libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT => Error::Unsupported {
            feature: "nf_tables",
            module: "nf_tables",
            detail: reason,
        },
        _ => Error::Kernel {
            what: what.to_owned(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping_names_the_fix() {
        let e = kernel_error(libc::EPERM, None, "creating table x");
        assert!(e.to_string().contains("root or CAP_NET_ADMIN"), "{e}");
        let e = kernel_error(libc::EOPNOTSUPP, None, "x");
        assert!(e.to_string().contains("modprobe nf_tables"), "{e}");
        let e = kernel_error(libc::EINVAL, Some("bad chain".into()), "batch message 3");
        assert!(e.to_string().contains("bad chain"), "{e}");
        assert!(e.to_string().contains("batch message 3"), "{e}");
    }

    #[test]
    fn a_socket_error_names_the_call_and_keeps_its_cause() {
        let io = std::io::Error::from_raw_os_error(libc::EMSGSIZE);
        let e = Error::socket("sending to nf_tables")(io);
        assert!(e.to_string().contains("sending to nf_tables"), "{e}");
        let source = std::error::Error::source(&e).expect("the io::Error is the source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.raw_os_error(), Some(libc::EMSGSIZE));
    }
}
