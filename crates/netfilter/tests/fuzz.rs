//! Property tests (proptest) of the netlink decoders: whatever the kernel or anything else
//! puts in a receive buffer, the walkers and parsers return (`None` or values borrowed from
//! the buffer), never panic and never loop. The stable-toolchain counterpart of `fuzz/`'s
//! `netlink` target, with a bounded number of cases.
#![allow(clippy::unwrap_used)] // test code

use edgecap_netfilter::batch::parse_counter;
use edgecap_netfilter::codec::{Attrs, MsgBuilder, Msgs, parse_error};
use edgecap_netfilter::nflog_msg::{Packets, parse_packet};
use proptest::prelude::*;

/// Every decoder over `bytes`, and over every message and attribute found in it.
fn decode_everything(bytes: &[u8]) {
    let mut msgs = 0;
    for m in Msgs::new(bytes) {
        msgs += 1;
        assert!(m.body.len() <= bytes.len());
        let _ = parse_error(m.body);
        let _ = parse_packet(m.body);
        let _ = parse_counter(m.body);
        let mut attrs = 0;
        for (_, data) in Attrs::new(m.body) {
            attrs += 1;
            // Nested attributes are walked the same way, one level at a time.
            let _ = Attrs::new(data).count();
            let _ = parse_counter(data);
        }
        assert!(
            attrs <= m.body.len() / 4 + 1,
            "more attributes than bytes allow"
        );
    }
    assert!(
        msgs <= bytes.len() / 16 + 1,
        "more messages than bytes allow"
    );
    for p in Packets::new(bytes) {
        assert!(p.payload.len() <= bytes.len());
    }
    let _ = parse_error(bytes);
    let _ = parse_packet(bytes);
    let _ = parse_counter(bytes);
}

/// A well-formed batch for mutation: an NFLOG packet message (header, timestamp, device,
/// payload, prefix, sequence) and a counter answer with nested attributes.
fn valid_batch(payload: &[u8], seq: u32) -> Vec<u8> {
    let mut b = MsgBuilder::new();
    // NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET
    let m = b.begin_msg(4 << 8, 0, seq, 2, 7);
    b.attr(1, &[0x08, 0x00, 2, 0]);
    b.attr(3, &[0; 16]);
    b.attr_be32(4, 3);
    b.attr(9, payload);
    b.attr_str(10, "p0");
    b.attr_be32(11, seq);
    b.end_msg(m);
    let m = b.begin_msg(10 << 8, 0, seq, 2, 0);
    b.attr_str(1, "edgecap_x");
    let n = b.nest_begin(4);
    b.attr(1, &7u64.to_be_bytes());
    b.attr(2, &9u64.to_be_bytes());
    b.nest_end(n);
    b.end_msg(m);
    b.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Arbitrary bytes.
    #[test]
    fn decoders_are_total_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_everything(&bytes);
    }

    /// Valid batches with bytes changed and cut: lengths that lie, attributes that overrun
    /// their message, nests that claim more than their parent.
    #[test]
    fn decoders_are_total_on_mutated_batches(
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        seq in any::<u32>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let mut b = valid_batch(&payload, seq);
        let whole = Packets::new(&b).count();
        prop_assert_eq!(whole, 1);
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(b.len() - cut % (b.len() + 1));
        decode_everything(&b);
    }
}
