//! What a finished capture reports.

use std::time::Duration;

use serde::Serialize;

/// Why the capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    TimeLimit,
    PacketLimit,
    ByteLimit,
    /// SIGINT / SIGTERM or a caller's stop request.
    Stopped,
    /// The reader of the output went away (e.g. `| head`).
    OutputClosed,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::TimeLimit => "time limit reached",
            StopReason::PacketLimit => "packet limit reached",
            StopReason::ByteLimit => "byte limit reached",
            StopReason::Stopped => "stopped by request",
            StopReason::OutputClosed => "output closed by its reader",
        }
    }
}

/// Counts of a finished capture. `lost` is exact: NFLOG sequence gaps plus packets the kernel
/// logged that never arrived before the capture ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    /// The capture points, comma-separated.
    pub point: String,
    pub group: u16,
    pub filter: String,
    /// Packets written to the file.
    pub packets: u64,
    /// Packet bytes written (as captured).
    pub bytes: u64,
    /// Size of the output file.
    pub file_bytes: u64,
    /// Packets the kernel logged for us but we never received.
    pub lost: u64,
    /// Packets that matched the filter in the kernel (before sampling).
    pub matched: u64,
    /// Packets the kernel handed to NFLOG (after sampling).
    pub logged: u64,
    /// Socket overrun reports (each covers one or more lost batches; `lost` is the exact count).
    pub overruns: u64,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub stop_reason: StopReason,
    /// Per capture point, in the order asked for.
    pub points: Vec<PointSummary>,
}

/// What one capture point saw.
#[derive(Debug, Clone, Serialize)]
pub struct PointSummary {
    pub point: String,
    /// Packets written to this point's interface.
    pub packets: u64,
    /// Packets that matched at this point (before sampling).
    pub matched: u64,
    /// Packets this point handed to NFLOG.
    pub logged: u64,
    /// Packets of this point lost on the way to edgecap; unknown when a limit stopped the
    /// capture before everything queued was read (the total `lost` still counts the gaps).
    pub lost: Option<u64>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} packets ({} bytes) captured at {}, {} lost, in {:.2}s: {}",
            self.packets,
            self.bytes,
            self.point,
            self.lost,
            self.duration.as_secs_f64(),
            self.stop_reason.describe()
        )?;
        if self.matched != self.logged {
            write!(f, " ({} matched, {} sampled)", self.matched, self.logged)?;
        }
        Ok(())
    }
}
