//! edgecap's always-on observation, the pure parts (no I/O): what an agent keeps between
//! captures and what it reports.
//!
//! - [`margin`]: the sampling error of counts scaled from samples;
//! - [`ring`]: the look-back ring of sampled packets, bounded by bytes, thinned with age;
//! - [`rollup`]: per-second, per-point rollups from exact counters and samples, for a node or
//!   for one account inside its [`edgecap_filter::Boundary`];
//! - [`select`]: a look-back question answered from the ring (window, points, filter,
//!   limit), with estimates of what the matches stand for;
//! - [`sketch`]: space-saving heavy hitters with error bounds.

pub mod margin;
pub mod ring;
pub mod rollup;
pub mod select;
pub mod sketch;

pub use ring::{PeriodRate, Ring, RingConfig, RingConfigError, Sample, SampleMeta};
pub use rollup::{Roller, Second};
pub use select::{Selection, Taken, select};
pub use sketch::{Hitter, SpaceSaving};
