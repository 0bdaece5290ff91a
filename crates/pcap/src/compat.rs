//! Which pcapng files libpcap (and so tcpdump) can read.
//!
//! Wireshark reads any valid pcapng; libpcap's API has one linktype and one snaplen per file,
//! so it refuses a file whose interfaces differ in either (libpcap issue #1078). It also
//! compares every later IDB's *raw* linktype with the first IDB's linktype *after*
//! `linktype_to_dlt()`, so for LINKTYPE_RAW (101, but DLT_RAW is 12 on Linux) a second RAW
//! interface already fails: "an interface has a type 101 different from the type of the first
//! interface". Observed with libpcap 1.10.3, and the comparison is unchanged on libpcap master
//! (`sf-pcapng.c`, `pcap_ng_next_packet`). Other linktypes edgecap uses (1, 228, 239, 276) have
//! equal LINKTYPE and DLT values and are unaffected.

use crate::model::{Interface, LINKTYPE_RAW};

/// Why libpcap/tcpdump would refuse a pcapng file with these interfaces, or `None` if it reads
/// it. Wireshark and tshark read the file either way; classic pcap ([`crate::Format::Pcap`])
/// always works for tcpdump, because the writer only accepts uniform interfaces there.
pub fn libpcap_incompatibility(interfaces: &[Interface]) -> Option<String> {
    let (first, rest) = interfaces.split_first()?;
    if let Some(other) = rest.iter().find(|i| i.linktype != first.linktype) {
        return Some(format!(
            "interfaces {:?} (linktype {}) and {:?} (linktype {}) differ in linktype; libpcap \
             reads one linktype per file",
            first.name, first.linktype, other.name, other.linktype
        ));
    }
    if let Some(other) = rest.iter().find(|i| i.snaplen != first.snaplen) {
        return Some(format!(
            "interfaces {:?} (snaplen {}) and {:?} (snaplen {}) differ in snaplen; libpcap reads \
             one snaplen per file",
            first.name, first.snaplen, other.name, other.snaplen
        ));
    }
    if first.linktype == LINKTYPE_RAW && !rest.is_empty() {
        return Some(format!(
            "{} interfaces of linktype RAW (101): libpcap compares later interfaces against \
             DLT_RAW (12) and rejects them; use one interface per file, classic pcap, or \
             another linktype such as LINUX_SLL2 (276)",
            interfaces.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2};

    fn with(name: &str, linktype: u16, snaplen: u32) -> Interface {
        Interface {
            linktype,
            ..Interface::raw(name, snaplen)
        }
    }

    #[test]
    fn uniform_non_raw_interfaces_are_readable() {
        assert_eq!(libpcap_incompatibility(&[]), None);
        assert_eq!(
            libpcap_incompatibility(&[with("a", LINKTYPE_RAW, 96)]),
            None
        );
        let sll2 = [
            with("a", LINKTYPE_LINUX_SLL2, 96),
            with("b", LINKTYPE_LINUX_SLL2, 96),
        ];
        assert_eq!(libpcap_incompatibility(&sll2), None);
    }

    #[test]
    fn reasons_name_the_conflict() {
        let mixed = [
            with("a", LINKTYPE_RAW, 96),
            with("b", LINKTYPE_ETHERNET, 96),
        ];
        let why = libpcap_incompatibility(&mixed).unwrap();
        assert!(why.contains("\"b\" (linktype 1)"), "{why}");
        let snap = [
            with("a", LINKTYPE_ETHERNET, 96),
            with("b", LINKTYPE_ETHERNET, 128),
        ];
        assert!(
            libpcap_incompatibility(&snap)
                .unwrap()
                .contains("snaplen 128")
        );
        let raw = [with("a", LINKTYPE_RAW, 96), with("b", LINKTYPE_RAW, 96)];
        assert!(libpcap_incompatibility(&raw).unwrap().contains("DLT_RAW"));
    }
}
