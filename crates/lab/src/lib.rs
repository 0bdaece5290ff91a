//! A throw-away test network of Linux network namespaces, and crafted-traffic senders, for
//! edgecap's tests, benchmarks and people trying edgecap (`edgecap lab up`).
//!
//! ```text
//!                  198.18.0.0/24              198.18.1.0/24
//!   [src] to-edge0 ------------- from-src [edge0] to-origin ------------- from-edge0 [origin]
//!         to-edge1 ------------- from-src [edge1] to-origin ------------- from-edge1
//!                  198.18.2.0/24              198.18.3.0/24
//! ```
//!
//! # Modules
//!
//! | module | what |
//! | --- | --- |
//! | [`spec`] | [`LabSpec`]: edges, name prefix or fixed name, silent origin |
//! | [`topology`] | [`Lab`]: build / attach / keep / destroy, accessors, `exec` in a namespace |
//! | `build` | the setup commands: sysctls, veth pairs, addresses, neighbours, routes, nft |
//! | [`plan`] | the address plan as pure functions: addresses, prefixes, MACs, interface names |
//! | [`netns`] | running Rust code (sockets, threads) inside a lab namespace (`edgecap_netns`) |
//! | [`pipeline`] | each edge's firewall and mitigation tables, their ports, rates and priorities |
//! | [`packet`] | crafting raw IPv4/IPv6 TCP/UDP/ICMP/any-protocol packets, markers, Ethernet |
//! | [`send`] | [`Lab::send`], [`Lab::send_from`], [`Lab::blast`] (sendmmsg generator) |
//! | [`state`] | lab names, state files under `/run/edgecap-lab/`, [`cleanup_stale`] |
//! | `cmd` | running `ip`/`nft`/`sysctl` as argv lists with a time limit |
//! | `sys` | the only `unsafe`: AF_PACKET socket, `send`, `sendmmsg` |
//! | [`error`] | [`LabError`] |
//!
//! # Address plan (edge `i`, 0-based, at most [`plan::MAX_EDGES`])
//!
//! | link | namespace: interface | IPv4 | IPv6 | MAC |
//! | --- | --- | --- | --- | --- |
//! | src <-> edge i | src: `to-edge<i>` | 198.18.(2i).2/24 | 2001:db8:(2i)::2/64 | 02:ec:00:ii:00:02 |
//! | | edge i: `from-src` | 198.18.(2i).1/24 | 2001:db8:(2i)::1/64 | 02:ec:00:ii:00:01 |
//! | edge i <-> origin | edge i: `to-origin` | 198.18.(2i+1).1/24 | 2001:db8:(2i+1)::1/64 | 02:ec:01:ii:00:01 |
//! | | origin: `from-edge<i>` | 198.18.(2i+1).2/24 | 2001:db8:(2i+1)::2/64 | 02:ec:01:ii:00:02 |
//!
//! (`2i` in an IPv6 address is a hexadecimal group: edge 5 uses 2001:db8:a::/64; `ii` is the
//! edge index in hex; interface indexes are fixed too, see [`plan::ifindex`].)
//!
//! Routes: the source reaches 198.18.(2i+1).0/24 and 2001:db8:(2i+1)::/64 via edge i; the
//! origin reaches 198.18.(2i).0/24 and 2001:db8:(2i)::/64 via edge i. There is no default
//! route anywhere: nothing leaves the lab. Every link has permanent neighbour entries and
//! IPv6 addresses without DAD, so crafted traffic flows from the first packet without ARP or
//! ND. Edges forward both families. By default the origin is silent
//! (nft table `lab_origin` drops all its input and output except loopback), so probes never
//! draw RSTs or ICMP errors.
//!
//! Namespaces are `<lab>-src`, `<lab>-edge<i>`, `<lab>-origin`, where `<lab>` is
//! `<prefix><8 random hex>` (prefix `ec` by default) or a fixed name. Creating the veth pairs
//! inside the namespaces means nothing appears in the root namespace, even briefly.
//!
//! # Lifetime
//!
//! A lab from [`Lab::new`] is removed when dropped, also while a failing test unwinds;
//! [`Lab::down`] removes it explicitly and reports errors. [`Lab::keep`] leaves it running
//! (for `edgecap lab up --name demo`); [`Lab::attach`] reopens it without owning it and
//! [`Lab::destroy`] removes it. A process killed before its `Drop` ran leaves namespaces
//! behind: every lab records its creator's pid and start time in
//! `/run/edgecap-lab/<lab>.state`, and [`cleanup_stale`] removes the labs of a prefix whose
//! creator is gone (kept labs excepted).
//!
//! ```no_run
//! use edgecap_lab::{Lab, LabSpec, packet::Packet};
//! let lab = Lab::new(&LabSpec::default())?;
//! let p = Packet::udp(lab.src_addr(0, false), lab.origin_addr(0, false), 40000, 53)
//!     .marker(1)
//!     .build()?;
//! lab.send(0, &[p])?;
//! # Ok::<(), edgecap_lab::LabError>(())
//! ```

mod build;
mod cmd;
pub mod error;
pub mod netns;
pub mod packet;
pub mod pipeline;
pub mod plan;
pub mod send;
pub mod spec;
pub mod state;
mod sys;
pub mod topology;

pub use cmd::{NETNS_DIR, netns_exec};
pub use error::LabError;
pub use send::{Blast, BlastReport, Direction, SendReport};
pub use spec::LabSpec;
pub use state::cleanup_stale;
pub use topology::Lab;
