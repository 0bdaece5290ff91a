//! Exit codes, as the `edgecap` binary's: 0 success, 1 a failure while running, 2 bad input
//! (nothing was started).

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// Bad input: exit 2. The message names the flag and the reason.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
    /// Something failed while running: exit 1.
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}
