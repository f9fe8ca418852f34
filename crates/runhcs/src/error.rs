//! The errors of runhcs. Every failure is one of these; `main` prints it as
//! `runhcs: <message>` (and to `--log`) and exits with status 1, as runc does.

use hcs_errors::HcsError;

/// A runhcs failure.
#[derive(Debug, thiserror::Error)]
pub enum RunhcsError {
    /// An HCS call failed (the message carries the HRESULT's name).
    #[error("{context}: {source}")]
    Hcs {
        /// What runhcs was doing.
        context: String,
        /// The HCS error.
        source: HcsError,
    },
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What runhcs was doing.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bundle's config.json is malformed or cannot be mapped.
    #[error("invalid config.json: {0}")]
    Spec(String),
    /// No container with this id in `--root`.
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container \"{0}\" already exists")]
    Exists(String),
    /// The container is not in a state that allows the command.
    #[error("{0}")]
    State(String),
    /// A bad command-line argument.
    #[error("{0}")]
    Usage(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, RunhcsError>;

/// Attach a context to HCS and I/O errors.
pub trait Context<T> {
    /// Wrap the error with what was being done.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, HcsError> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| RunhcsError::Hcs {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| RunhcsError::Io {
            context: what(),
            source,
        })
    }
}
