//! The reader is total: random bytes, random bytes behind a valid magic, and every truncation
//! and single-byte corruption of valid files end in packets, a clean end or an error, never a
//! panic, a hang or an unbounded allocation. A seeded generator keeps failures reproducible.

use super::tests_build::{Ng, ipv4_udp, ipv6_udp, pcap_header, pcap_record};
use super::{Endian, Reader};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Reads everything; returns packets seen. Bounded: every packet consumes at least 12 bytes.
fn drain(bytes: &[u8]) -> usize {
    let Ok(mut r) = Reader::new(bytes) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some(p)) = r.next_packet() {
        assert!(p.data.len() == p.caplen as usize);
        if let Some(ip) = p.ip {
            assert!(ip.len() <= p.data.len());
        }
        n += 1;
        assert!(n <= bytes.len() / 12 + 1, "more packets than bytes allow");
    }
    n
}

fn samples() -> Vec<Vec<u8>> {
    let v4 = ipv4_udp(1, 2, 3, b"payload");
    let v6 = ipv6_udp(2, 3, b"payload");
    let mut out = Vec::new();
    for order in [Endian::Little, Endian::Big] {
        let mut f = pcap_header(order, 0xA1B2_3C4D, 101);
        pcap_record(&mut f, order, 1, 2, &v4);
        pcap_record(&mut f, order, 3, 4, &v6);
        out.push(f);
        let mut ng = Ng::new(order);
        ng.idb(239, 0, &[(2, b"a/b"), (9, &[0x89])]);
        ng.idb(1, 64, &[]);
        let mut nflog = vec![2, 0, 0, 0];
        nflog.extend_from_slice(&match order {
            Endian::Little => [(4 + v4.len()) as u8, 0, 9, 0],
            Endian::Big => [0, (4 + v4.len()) as u8, 0, 9],
        });
        nflog.extend_from_slice(&v4);
        ng.epb(0, 5, &nflog);
        ng.spb(100, &v6);
        ng.section(order);
        ng.idb(101, 0, &[]);
        ng.pb(0, 9, &v4);
        ng.block(5, &[0; 12]);
        out.push(ng.bytes);
    }
    out
}

#[test]
fn every_truncation_and_byte_flip_of_valid_files() {
    for f in samples() {
        let full = drain(&f);
        assert!(full >= 2);
        for cut in 0..f.len() {
            assert!(drain(&f[..cut]) <= full);
        }
        for i in 0..f.len() {
            for v in [0x00, 0xFF, 0x80, 0x01] {
                let mut g = f.clone();
                g[i] ^= v;
                drain(&g);
            }
        }
    }
}

#[test]
fn random_bytes_and_random_bodies_behind_valid_magics() {
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let prefixes: [&[u8]; 6] = [
        &[0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0],
        &[0xA1, 0xB2, 0x3C, 0x4D, 0, 2, 0, 4],
        &[
            0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 0x4D, 0x3C, 0x2B, 0x1A, 1, 0,
        ],
        &[
            0x0A, 0x0D, 0x0D, 0x0A, 0, 0, 0, 28, 0x1A, 0x2B, 0x3C, 0x4D, 0, 1,
        ],
        &[],
        &[0x0A, 0x0D, 0x0D, 0x0A],
    ];
    for round in 0..4000 {
        let prefix = prefixes[round % prefixes.len()];
        let len = rng.below(600);
        let mut f = prefix.to_vec();
        f.extend(rng.bytes(len));
        drain(&f);
    }
}

#[test]
fn random_splices_of_valid_blocks() {
    // Valid blocks in random order and byte orders, with random fields: exercises the
    // interface bookkeeping (packets before IDBs, sections mid-file) more than pure noise does.
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let order = if rng.below(2) == 0 {
            Endian::Little
        } else {
            Endian::Big
        };
        let mut ng = Ng::new(order);
        for _ in 0..rng.below(12) {
            let n = rng.below(80);
            let data = rng.bytes(n);
            match rng.below(6) {
                0 => {
                    let (lt, snap, resol) = (rng.below(300), rng.below(100), rng.next());
                    ng.idb(lt as u16, snap as u32, &[(9, &[resol as u8])]);
                }
                1 => {
                    let (i, t) = (rng.below(3), rng.next());
                    ng.epb(i as u32, t, &data);
                }
                2 => {
                    let orig = rng.below(200);
                    ng.spb(orig as u32, &data);
                }
                3 => {
                    let (i, t) = (rng.below(3), rng.next());
                    ng.pb(i as u16, t, &data);
                }
                4 => {
                    let big = rng.below(2) == 1;
                    ng.section(if big { Endian::Big } else { Endian::Little });
                }
                _ => {
                    let kind = rng.next() as u32 | 0x100;
                    ng.block(kind, &data);
                }
            }
        }
        drain(&ng.bytes);
    }
}

// Property tests (proptest): the stable-toolchain counterpart of `fuzz/`'s `pcap_read` target,
// with a bounded number of cases. Failures print the shrunk input.
mod props {
    use proptest::prelude::*;

    use super::{drain, samples};
    use crate::merge::{MergeInput, MergeOptions, merge};

    /// A valid sample file with `edits` applied: (position, new byte) pairs, then a cut.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let n = samples().len();
        (
            0..n,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            any::<usize>(),
        )
            .prop_map(|(which, edits, cut)| {
                let mut f = samples().swap_remove(which);
                for (at, b) in edits {
                    let i = at % f.len();
                    f[i] = b;
                }
                let keep = f.len() - cut % (f.len() / 4 + 1);
                f.truncate(keep);
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary bytes: packets, a clean end or an error, never a panic.
        #[test]
        fn reading_arbitrary_bytes_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            drain(&bytes);
        }

        /// Mutated valid files (pcap and pcapng, both byte orders, several sections).
        #[test]
        fn reading_mutated_files_is_total(f in mutated()) {
            drain(&f);
        }

        /// The merge of mutated inputs ends in a file or an error naming an input, never a
        /// panic.
        #[test]
        fn merging_mutated_files_is_total(a in mutated(), b in mutated()) {
            let inputs: Result<Vec<_>, _> = [("a", &a[..]), ("b", &b[..])]
                .into_iter()
                .map(|(name, bytes)| MergeInput::new(name, bytes))
                .collect();
            if let Ok(inputs) = inputs {
                match merge(inputs, Vec::new(), &MergeOptions::default(), |_| {}) {
                    Ok(_) => {}
                    Err(e) => {
                        // Read errors and timestamps the output cannot hold name the input.
                        let msg = e.to_string();
                        prop_assert!(msg.starts_with("a: ") || msg.starts_with("b: "), "{}", msg);
                    }
                }
            }
        }
    }
}
