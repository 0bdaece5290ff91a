//! The observer's engine through the real kernel: exact per-point totals from its counters,
//! sampled headers with their original lengths, and nothing left behind when it stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgecap_capture::observe::{Observation, ObservedPacket, ObserverSpec, observe};
use edgecap_capture::{Config, GroupChoice};
use edgecap_lab::packet::find_marker;

use crate::common::{edgecap_tables, lab, root_or_skip, udp_packets, wait_for};

const PORT: u16 = 5000;

#[derive(Default)]
struct Seen {
    /// (marker, bytes kept, original length) of every sample with a marker.
    samples: Vec<(u32, usize, u32)>,
    all_samples: u64,
    totals: u64,
    total_bytes: u64,
    counter_reads: u64,
}

struct Sink(Arc<Mutex<Seen>>);

impl Observation for Sink {
    fn sample(&mut self, p: ObservedPacket<'_>) {
        let mut s = self.0.lock().unwrap();
        s.all_samples += 1;
        if let Some(m) = find_marker(p.data) {
            s.samples.push((m, p.data.len(), p.orig_len));
        }
    }

    fn totals(&mut self, _t: u64, point: usize, packets: u64, bytes: u64) {
        assert_eq!(point, 0);
        let mut s = self.0.lock().unwrap();
        s.totals += packets;
        s.total_bytes += bytes;
        s.counter_reads += 1;
    }
}

/// Runs the observer on edge 0 at pre-firewall sampling one in `one_in`, while `send` runs;
/// what it saw.
fn observed(one_in: u32, send: impl FnOnce(&edgecap_lab::Lab)) -> Seen {
    let lab = lab();
    let ns = lab.edge_ns(0).to_owned();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let points =
        edgecap_capture::points::resolve(&["pre-firewall".to_owned()], &Config::default(), &[])
            .unwrap();
    let spec = ObserverSpec {
        table: format!("edgecap_obs_test{}", std::process::id()),
        points,
        one_in,
        snaplen: 160,
        group: GroupChoice::Auto,
        socket_buffer: None,
    };
    let table = spec.table.clone();
    let observer = {
        let (seen, stop) = (seen.clone(), stop.clone());
        edgecap_lab::netns::spawn(&ns, move || observe(&spec, &mut Sink(seen), &stop)).unwrap()
    };
    assert!(
        wait_for(Duration::from_secs(10), || edgecap_tables(&ns)
            .contains(&table)),
        "the observer's table never appeared"
    );
    send(&lab);
    // The counters are read every second; give the last packets one read.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let stats = observer.join().unwrap().unwrap().unwrap();
    assert_eq!(stats.lost, 0, "{stats:?}");
    assert!(
        edgecap_tables(&ns).is_empty(),
        "the observer left its table"
    );
    let mut s = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    s.samples.sort_unstable();
    s
}

#[test]
fn every_packet_sampled_gives_headers_with_original_lengths_and_exact_totals() {
    if !root_or_skip() {
        return;
    }
    let s = observed(1, |lab| {
        lab.send(0, &udp_packets(lab, 1..=300, PORT, Some(1000)))
            .unwrap();
    });
    let markers: Vec<u32> = s.samples.iter().map(|x| x.0).collect();
    assert_eq!(markers, (1..=300).collect::<Vec<_>>());
    // Headers only: 160 bytes kept of each 1000-byte packet, which says how long it was. The
    // marker sits right after the UDP header, inside the 160 bytes.
    assert!(
        s.samples.iter().all(|x| x.1 == 160 && x.2 == 1000),
        "{:?}",
        &s.samples[..3]
    );
    // Sampling every packet, the counters saw exactly what was logged.
    assert_eq!(s.totals, s.all_samples);
    assert!(s.total_bytes >= 300 * 1000);
    assert!(s.counter_reads >= 2);
}

#[test]
fn one_in_sixteen_is_sampled_while_the_totals_stay_exact() {
    if !root_or_skip() {
        return;
    }
    let n = 4000u32;
    let s = observed(16, |lab| {
        lab.send(0, &udp_packets(lab, 1..=n, PORT, None)).unwrap();
    });
    // The counters count every packet, sampled or not (a few more may be the lab's own
    // neighbour discovery).
    assert!(
        (u64::from(n)..u64::from(n) + 50).contains(&s.totals),
        "totals {} for {n} packets",
        s.totals
    );
    // About n/16 = 250 samples: five standard deviations (about 77) either side.
    let k = s.samples.len();
    assert!((173..=327).contains(&k), "{k} samples of {n} at 1 in 16");
    let mut markers: Vec<u32> = s.samples.iter().map(|x| x.0).collect();
    markers.dedup();
    assert_eq!(markers.len(), k, "a packet sampled twice");
}
