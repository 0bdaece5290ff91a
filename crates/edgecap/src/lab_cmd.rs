//! `edgecap lab up|down`: the test network for people trying edgecap.

use clap::Subcommand;
use edgecap_lab::{Lab, LabSpec};

use crate::exit::Failure;
use crate::out::outln;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create a lab: a traffic source, edge nodes and an origin, in network namespaces.
    Up {
        /// Name of the lab (namespaces are <name>-src, <name>-edge0, ..., <name>-origin).
        #[arg(long, default_value = "edgecap")]
        name: String,
        /// Number of edge nodes.
        #[arg(long, default_value_t = 1)]
        edges: usize,
    },
    /// Remove a lab created with `lab up`.
    Down {
        #[arg(long, default_value = "edgecap")]
        name: String,
    },
}

pub fn run(cmd: &LabCommand) -> Result<(), Failure> {
    match cmd {
        LabCommand::Up { name, edges } => up(name, *edges),
        LabCommand::Down { name } => {
            Lab::destroy(name).map_err(|e| Failure::runtime(format!("lab down {name}: {e}")))?;
            eprintln!("lab {name} removed");
            Ok(())
        }
    }
}

fn up(name: &str, edges: usize) -> Result<(), Failure> {
    if edges == 0 || edges > edgecap_lab::plan::MAX_EDGES {
        return Err(Failure::usage(format!(
            "--edges: {edges} is outside 1-{}",
            edgecap_lab::plan::MAX_EDGES
        )));
    }
    let spec = LabSpec {
        edges,
        ..LabSpec::named(name)
    };
    let mut lab = Lab::new(&spec).map_err(|e| Failure::runtime(format!("lab up {name}: {e}")))?;
    lab.keep()
        .map_err(|e| Failure::runtime(format!("lab up {name}: {e}")))?;
    outln!("lab {name} is up (remove it with: edgecap lab down --name {name})");
    outln!(
        "  source  {:<22} {}",
        lab.src_ns(),
        addrs(&lab, |l, i, v6| l.src_addr(i, v6), edges)
    );
    for i in 0..edges {
        outln!(
            "  edge{i}   {:<22} {} / {}",
            lab.edge_ns(i),
            lab.edge_addr_src_side(i, false),
            lab.edge_addr_origin_side(i, false)
        );
    }
    outln!(
        "  origin  {:<22} {}",
        lab.origin_ns(),
        addrs(&lab, |l, i, v6| l.origin_addr(i, v6), edges)
    );
    outln!();
    outln!("try:");
    outln!(
        "  ip netns exec {} edgecap capture --proto icmp --packets 3 -w - | tshark -r - &",
        lab.edge_ns(0)
    );
    outln!(
        "  ip netns exec {} ping -c 3 {}",
        lab.src_ns(),
        lab.origin_addr(0, false)
    );
    Ok(())
}

fn addrs(lab: &Lab, f: impl Fn(&Lab, usize, bool) -> std::net::IpAddr, edges: usize) -> String {
    (0..edges)
        .flat_map(|i| [f(lab, i, false), f(lab, i, true)])
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
