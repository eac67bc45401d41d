//! How a container's standard streams are wired.

use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// The stdio handed to a runtime for a container's init or an exec'd process.
///
/// Without a terminal, the process inherits `stdin`, `stdout` and `stderr`
/// (pipe ends the caller opened; `None` means `/dev/null`). With a terminal,
/// the runtime creates a pty in the container and sends its master over the
/// unix socket at `console_socket` (SCM_RIGHTS), as runc does.
#[derive(Debug, Default)]
pub struct StdioSpec {
    /// The process's stdin, or `/dev/null`.
    pub stdin: Option<OwnedFd>,
    /// The process's stdout, or `/dev/null`.
    pub stdout: Option<OwnedFd>,
    /// The process's stderr, or `/dev/null`.
    pub stderr: Option<OwnedFd>,
    /// Where to send the pty master when the process has a terminal.
    pub console_socket: Option<PathBuf>,
}

impl StdioSpec {
    /// All three streams to `/dev/null`, no terminal.
    pub fn null() -> Self {
        StdioSpec::default()
    }
}

/// A terminal size in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsoleSize {
    /// Rows.
    pub height: u16,
    /// Columns.
    pub width: u16,
}

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdStream {
    /// Standard input (only in Docker's frame format).
    Stdin,
    /// Standard output (also a terminal's single stream).
    Stdout,
    /// Standard error.
    Stderr,
}

impl StdStream {
    /// `"stdout"`, `"stderr"` or `"stdin"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StdStream::Stdin => "stdin",
            StdStream::Stdout => "stdout",
            StdStream::Stderr => "stderr",
        }
    }
}
