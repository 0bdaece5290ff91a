//! Garbage in, no panic out: arbitrary bytes through `inspect`, and arbitrary files through
//! the reader and both analyses.

use edgecap_analyze::{Options, inspect, run_diff, run_fate};
use edgecap_pcap::read::Reader;
use proptest::prelude::*;

use crate::common::{T0, pcapng, udp};

proptest! {
    #[test]
    fn inspect_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = inspect(&bytes);
    }

    #[test]
    fn analyses_are_total_on_mutated_files(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
    ) {
        let names = ["n/pre-firewall", "n/egress"];
        let mut file = pcapng(&names, &[(0, T0, udp(1, 2, 3)), (1, T0 + 5, udp(1, 2, 3)), (0, T0 + 9, udp(3, 4, 5))]);
        for (at, v) in flips {
            let i = at % file.len();
            file[i] ^= v;
        }
        file.truncate(cut % (file.len() + 1));
        if let Ok(mut r) = Reader::new(&file[..]) {
            let _ = run_fate(&mut r, Options::default());
        }
        if let (Ok(mut a), Ok(mut b)) = (Reader::new(&file[..]), Reader::new(&file[..])) {
            let _ = run_diff(&mut a, &mut b, ("a", "b"), Options::default());
        }
    }
}
