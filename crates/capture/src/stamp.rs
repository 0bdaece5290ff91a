//! Per-packet times where the kernel gives none.
//!
//! NFLOG carries a kernel timestamp only for packets logged at prerouting, input and forward
//! (`hooknum <= NF_INET_FORWARD` in `nfnetlink_log.c`); packets logged at output, postrouting
//! (the `egress` point) and the inet ingress hook carry none. They still need a time of their
//! own that keeps the file in order along the pipeline. Two facts bound it:
//!
//! - packets of one group are queued in the order they were logged (the NFLOG sequence
//!   number), so a packet was logged after every packet before it in the batch: the kernel
//!   time of the last earlier packet that had one is a lower bound (a forwarded packet's own
//!   prerouting copy, in a capture at `pre-firewall,egress`);
//! - the kernel sends a batch at most one flush timeout after its first packet was queued
//!   (10 ms, see `NflogConfig::tuned`), so every packet of a batch was logged in the window
//!   before the batch was read.
//!
//! So a packet without a kernel time gets the kernel time of the last packet logged before it
//! in the same batch (plus 1 ns per packet, keeping order); the packets of a batch logged
//! before any such time are spread evenly over the flush window ending when the batch was
//! read. No time goes below one already given. [`describe`] is what the file says about it.

/// How long before a batch is read its packets can have been logged: the kernel's flush
/// timeout (`NflogConfig::tuned` sets 1, in 1/100 s, rounded to whole jiffies, so up to 10 ms
/// plus a jiffy at HZ=100) and the reader's wake-up.
const FLUSH_WINDOW_NS: u64 = 20_000_000;

/// Whether NFLOG gives packets logged at `hook` a kernel timestamp.
pub(crate) fn has_kernel_time(hook: edgecap_netfilter::HookNum) -> bool {
    use edgecap_netfilter::HookNum::*;
    matches!(hook, Prerouting | Input | Forward)
}

/// Whether `hook` runs before prerouting (the inet ingress hook): its packets' next kernel
/// time, not the previous one, belongs to the same packet.
pub(crate) fn before_prerouting(hook: edgecap_netfilter::HookNum) -> bool {
    hook == edgecap_netfilter::HookNum::Ingress
}

/// How the times of a point with these hooks were taken, for its interface description.
pub(crate) fn describe(hooks: &[edgecap_netfilter::Hook]) -> &'static str {
    if hooks.iter().all(|h| has_kernel_time(h.hook)) {
        "timestamps: the kernel's, in microseconds"
    } else if hooks.iter().any(|h| before_prerouting(h.hook)) {
        "timestamps: estimated by edgecap, as the kernel gives none at this hook: the kernel \
         time of the next packet of this capture logged after it in the same batch (its own \
         prerouting time when pre-firewall is captured too), else spread over the 20 ms \
         before its batch was read"
    } else {
        "timestamps: estimated by edgecap, as the kernel gives none at this hook: the kernel \
         time of the last packet of this capture logged before it in the same batch (its own \
         forward or prerouting time when those points are captured too), else spread over the \
         20 ms before its batch was read; never before a packet logged earlier"
    }
}

/// Gives every packet of a batch its time, in the order the kernel logged them.
#[derive(Debug, Default)]
pub(crate) struct Stamper {
    /// The latest time given so far.
    last: u64,
    /// Kernel time of the last packet of this batch that had one.
    anchor: Option<u64>,
    /// Per packet of the batch: the kernel time of the first later packet that has one.
    next_kernel: Vec<Option<u64>>,
    /// Index of the next packet to stamp.
    at: usize,
    /// Time for the next packet spread over the flush window, and the step.
    next: u64,
    step: u64,
}

impl Stamper {
    /// Starts a batch read at `read_ns` whose packets, in log order, have these kernel times.
    pub fn begin(&mut self, read_ns: u64, kernel_times: impl Iterator<Item = Option<u64>>) {
        self.anchor = None;
        self.at = 0;
        self.next_kernel.clear();
        self.next_kernel.extend(kernel_times);
        let without = self.next_kernel.iter().filter(|t| t.is_none()).count();
        // Later kernel times, from the back.
        let mut later = None;
        for t in self.next_kernel.iter_mut().rev() {
            let own = *t;
            *t = later;
            if own.is_some() {
                later = own;
            }
        }
        let from = read_ns
            .saturating_sub(FLUSH_WINDOW_NS)
            .max(self.last.saturating_add(1));
        self.next = from;
        self.step = read_ns.saturating_sub(from) / without.max(1) as u64;
    }

    /// The time of the next packet in log order, given its kernel time if it has one and
    /// whether it was logged before prerouting (ingress).
    pub fn stamp(&mut self, kernel_ns: Option<u64>, early: bool) -> u64 {
        let next_kernel = self.next_kernel.get(self.at).copied().flatten();
        self.at += 1;
        let t = match (kernel_ns, early, next_kernel, self.anchor) {
            (Some(k), ..) => {
                self.anchor = Some(k);
                k
            }
            // Ingress: the packet's own prerouting copy is (usually) the next one stamped.
            (None, true, Some(n), _) => n,
            // Output, postrouting: after the last stamped packet, in order.
            (None, false, _, Some(a)) => a.max(self.last.saturating_add(1)),
            (None, ..) => {
                let t = self.next.max(self.last.saturating_add(1));
                self.next = self.next.saturating_add(self.step);
                // Packets logged later in the batch have kernel times after this one's.
                next_kernel.map_or(t, |n| t.min(n))
            }
        };
        self.last = self.last.max(t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn batch(s: &mut Stamper, read: u64, packets: &[(Option<u64>, bool)]) -> Vec<u64> {
        s.begin(read, packets.iter().map(|p| p.0));
        packets
            .iter()
            .map(|&(k, early)| s.stamp(k, early))
            .collect()
    }

    #[test]
    fn kernel_times_anchor_the_packets_around_them() {
        let mut s = Stamper::default();
        // One packet at ingress, pre-firewall and egress, then a second one.
        let got = batch(
            &mut s,
            1_000 * MS,
            &[
                (None, true),
                (Some(990 * MS), false),
                (None, false),
                (None, true),
                (Some(995 * MS), false),
                (None, false),
            ],
        );
        assert_eq!(
            got,
            [
                990 * MS,
                990 * MS,
                990 * MS + 1,
                995 * MS,
                995 * MS,
                995 * MS + 1
            ]
        );
    }

    #[test]
    fn a_batch_without_kernel_times_is_spread_over_the_flush_window() {
        let mut s = Stamper::default();
        let got = batch(&mut s, 1_000 * MS, &[(None, false); 4]);
        assert_eq!(got, [980 * MS, 985 * MS, 990 * MS, 995 * MS]);
        // The next batch, read 2 ms later, starts after what was given.
        let t = batch(&mut s, 1_002 * MS, &[(None, false)])[0];
        assert!(t > 995 * MS && t <= 1_002 * MS, "{t}");
    }

    #[test]
    fn times_never_go_below_one_given_before_except_kernel_times() {
        let mut s = Stamper::default();
        assert_eq!(
            batch(&mut s, 1_000 * MS, &[(Some(1_500 * MS), false)]),
            [1_500 * MS]
        );
        let got = batch(
            &mut s,
            1_001 * MS,
            &[
                (None, false),
                (None, false),
                (Some(999 * MS), false),
                (None, false),
            ],
        );
        // The leading two are capped by the later kernel time but kept in order... the
        // kernel time is the truth even when older, and what follows it never goes back.
        assert_eq!(got[2], 999 * MS);
        assert_eq!(got[3], 1_500 * MS + 1);
        assert!(got[0] <= 999 * MS && got[1] <= 999 * MS);
    }

    #[test]
    fn only_prerouting_input_and_forward_have_kernel_times() {
        use edgecap_netfilter::{Hook, HookNum};
        let hook = |hook| Hook {
            hook,
            priority: 0,
            device: None,
        };
        assert!(describe(&[hook(HookNum::Input), hook(HookNum::Forward)]).contains("kernel's"));
        for h in [HookNum::Postrouting, HookNum::Output, HookNum::Ingress] {
            assert!(describe(&[hook(HookNum::Prerouting), hook(h)]).contains("estimated"));
        }
        assert!(describe(&[hook(HookNum::Ingress)]).contains("next packet"));
    }
}
