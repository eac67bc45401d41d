//! Signals by number or name.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A POSIX signal number. Parses `"SIGTERM"`, `"TERM"`, `"term"` and `"15"`.
///
/// ```
/// use engine_core::Signal;
/// assert_eq!("SIGKILL".parse::<Signal>().unwrap(), Signal::KILL);
/// assert_eq!("hup".parse::<Signal>().unwrap().number(), 1);
/// assert_eq!("15".parse::<Signal>().unwrap().to_string(), "SIGTERM");
/// assert!("SIGNOPE".parse::<Signal>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Signal(i32);

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

impl Signal {
    /// SIGHUP.
    pub const HUP: Signal = Signal(1);
    /// SIGINT.
    pub const INT: Signal = Signal(2);
    /// SIGKILL.
    pub const KILL: Signal = Signal(9);
    /// SIGTERM.
    pub const TERM: Signal = Signal(15);
    /// SIGSTOP.
    pub const STOP: Signal = Signal(19);
    /// SIGCONT.
    pub const CONT: Signal = Signal(18);
    /// SIGWINCH.
    pub const WINCH: Signal = Signal(28);

    /// A signal from its number (1 to 64).
    pub fn new(n: i32) -> Result<Self> {
        if (1..=64).contains(&n) {
            Ok(Signal(n))
        } else {
            Err(Error::invalid("signal", format!("{n} is not a signal number (1-64)")))
        }
    }
    /// The signal number.
    pub fn number(self) -> i32 {
        self.0
    }
}

impl std::str::FromStr for Signal {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            return Signal::new(n);
        }
        let up = t.to_ascii_uppercase();
        let bare = up.strip_prefix("SIG").unwrap_or(&up);
        if let Some(rest) = bare.strip_prefix("RTMIN") {
            let off: i32 = if rest.is_empty() { 0 } else { rest.trim_start_matches('+').parse().unwrap_or(-1) };
            if (0..=30).contains(&off) {
                return Signal::new(34 + off);
            }
        }
        NAMES
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|(_, v)| Signal(*v))
            .ok_or_else(|| Error::invalid("signal", format!("{s:?} is not a known signal name or number")))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMES.iter().find(|(_, v)| *v == self.0) {
            Some((n, _)) => write!(f, "SIG{n}"),
            None => write!(f, "{}", self.0),
        }
    }
}
