//! The netlink decoders on any receive buffer: messages, attributes (and nested ones), error
//! answers, NFLOG packets and counters; never a panic.
#![no_main]

use edgecap_netfilter::batch::parse_counter;
use edgecap_netfilter::codec::{Attrs, Msgs, parse_error};
use edgecap_netfilter::nflog_msg::{Packets, parse_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for m in Msgs::new(data) {
        let _ = parse_error(m.body);
        let _ = parse_packet(m.body);
        let _ = parse_counter(m.body);
        for (_, a) in Attrs::new(m.body) {
            let _ = Attrs::new(a).count();
        }
    }
    let _ = Packets::new(data).count();
});
