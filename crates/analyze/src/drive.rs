//! Running an analysis over readers the caller opened: [`fate`] over one capture, [`diff`]
//! over two read together in timestamp order. A read error mid-way stops the analysis; the
//! report covers what was read before it and says so in its `error` field, and the error is
//! returned beside it so the caller can choose an exit code.

use std::io::Read;

use edgecap_pcap::read::{ReadError, Reader};

use crate::Options;
use crate::diff::{Diff, Side};
use crate::diff_report::DiffReport;
use crate::fate::Fate;
use crate::fate_report::FateReport;
use crate::flow::{Observation, inspect};

/// One packet, reduced to what the analyses need, owned so the reader can move on.
struct Item {
    iface: u32,
    ts_ns: i64,
    obs: Option<Observation>,
}

fn pull<R: Read>(r: &mut Reader<R>) -> Result<Option<Item>, ReadError> {
    Ok(r.next_packet()?.map(|p| Item {
        iface: p.interface,
        ts_ns: p.ts_ns,
        obs: p.ip.and_then(inspect),
    }))
}

fn stopped(e: &ReadError) -> String {
    format!("reading stopped: {e}; the counts cover the packets before that point")
}

/// Fate of every flow in one capture.
pub fn fate<R: Read>(reader: &mut Reader<R>, opts: Options) -> (FateReport, Option<ReadError>) {
    let mut fate = Fate::new(opts);
    let mut known = 0;
    let error = loop {
        let item = match pull(reader) {
            Ok(Some(item)) => item,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        // Interfaces are declared before their packets (pcapng may define more mid-file).
        for info in reader.interfaces().get(known..).unwrap_or_default() {
            fate.interface(info);
        }
        known = reader.interfaces().len();
        fate.packet(item.iface, item.ts_ns, item.obs);
    };
    let mut report = fate.finish();
    report.error = error.as_ref().map(stopped);
    (report, error)
}

/// Packet-level comparison of capture A with capture B.
pub fn diff<RA: Read, RB: Read>(
    a: &mut Reader<RA>,
    b: &mut Reader<RB>,
    (a_name, b_name): (&str, &str),
    opts: Options,
) -> (DiffReport, Option<(Side, ReadError)>) {
    let mut diff = Diff::new(opts);
    let error = run(&mut diff, a, b).err();
    let mut report = diff.finish(a_name, b_name);
    report.error = error.as_ref().map(|(side, e)| {
        let name = if *side == Side::A { a_name } else { b_name };
        format!("{name}: {}", stopped(e))
    });
    (report, error)
}

fn run<RA: Read, RB: Read>(
    diff: &mut Diff,
    a: &mut Reader<RA>,
    b: &mut Reader<RB>,
) -> Result<(), (Side, ReadError)> {
    let mut next_a = pull(a).map_err(|e| (Side::A, e))?;
    let mut next_b = pull(b).map_err(|e| (Side::B, e))?;
    loop {
        let take_a = match (&next_a, &next_b) {
            (Some(x), Some(y)) => x.ts_ns <= y.ts_ns,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Ok(()),
        };
        if take_a {
            if let Some(item) = next_a.take() {
                diff.packet(Side::A, item.ts_ns, item.obs);
            }
            next_a = pull(a).map_err(|e| (Side::A, e))?;
        } else {
            if let Some(item) = next_b.take() {
                diff.packet(Side::B, item.ts_ns, item.obs);
            }
            next_b = pull(b).map_err(|e| (Side::B, e))?;
        }
    }
}
