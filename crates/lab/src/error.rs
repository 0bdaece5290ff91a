//! The one error type of the crate.

use std::io;
use std::time::Duration;

/// Everything that can go wrong while building, using or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The process lacks the privileges to create network namespaces.
    #[error(
        "building the lab needs root (network namespaces): run as root or with \
         CAP_SYS_ADMIN+CAP_NET_ADMIN"
    )]
    NotRoot,

    /// A program the lab drives is not installed.
    #[error("the lab needs the program `{tool}`, which is not in PATH (Debian package: {package})")]
    MissingTool {
        /// The binary that was looked for.
        tool: String,
        /// The Debian package that ships it.
        package: &'static str,
    },

    /// A [`crate::LabSpec`] field or an argument has a value the lab cannot use.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field or argument name.
        field: &'static str,
        /// Why the value was refused.
        reason: String,
    },

    /// A lab with a fixed name already exists (`Lab::new` with a name).
    #[error("a lab named `{0}` already exists (use Lab::attach or Lab::destroy)")]
    AlreadyExists(String),

    /// No lab with that name exists (`Lab::attach`, `Lab::destroy`).
    #[error("no lab named `{0}` exists")]
    NotFound(String),

    /// An external command exited with a failure status.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for the reader (it was run as an argv, never a shell string).
        command: String,
        /// Exit status as printed by the OS.
        status: String,
        /// What it printed on standard error (trimmed).
        stderr: String,
    },

    /// An external command did not finish in time and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },

    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A packet could not be crafted from the given parameters.
    #[error("cannot craft packet: {0}")]
    Packet(String),

    /// A thread running inside a namespace (a sender, or code given to
    /// [`crate::netns::run`]) panicked.
    #[error("a thread running inside a lab namespace panicked")]
    ThreadPanicked,
}

impl LabError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }

    /// A refused argument value.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        LabError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
