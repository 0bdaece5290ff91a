//! Errors of a capture run.

use crate::summary::Summary;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Netfilter(#[from] edgecap_netfilter::Error),
    #[error("writing the capture file: {0}")]
    Output(#[from] edgecap_pcap::Error),
    #[error(
        "no free NFLOG group in {}-{}: every group is bound by another process",
        crate::spec::AUTO_GROUPS.start(),
        crate::spec::AUTO_GROUPS.end()
    )]
    NoFreeGroup,
    /// The output's reader went away; the capture was stopped and cleaned up.
    #[error("output closed by its reader after {} packets", .0.packets)]
    OutputClosed(Box<Summary>),
    /// The observer's rules could not be built.
    #[error("observer: {0}")]
    Observer(String),
}
