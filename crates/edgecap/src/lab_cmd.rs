//! `edgecap lab up|down`: the test network for people.

use crate::cli::LabCommand;
use crate::exit::Failure;

pub fn run(_cmd: &LabCommand) -> Result<(), Failure> {
    Err(Failure::runtime("lab: waiting for the lab crate"))
}
