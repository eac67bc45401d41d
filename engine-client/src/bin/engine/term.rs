//! The terminal: raw mode for `-it`, and its size.

use nix::sys::termios::{self, SetArg, Termios};
use std::io::IsTerminal;

/// Puts stdin's terminal in raw mode; restores it when dropped.
pub struct RawMode(Termios);

impl RawMode {
    /// Raw mode, if stdin is a terminal.
    pub fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let orig = termios::tcgetattr(&stdin).ok()?;
        let mut raw = orig.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}

/// The terminal's (rows, columns), if stdout is a terminal.
pub fn size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Is stdout a terminal?
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}
