//! Why the program stopped early, and the exit code it means: 2 for a bad
//! command line or config, 1 for a failure at run time. Only `main` turns
//! it into a process exit.

use std::fmt;

/// Why the program stopped early; decides the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command line or config: exit 2.
    Usage(String),
    /// Failure at run time (port in use...): exit 1.
    Runtime(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) | Error::Runtime(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}
