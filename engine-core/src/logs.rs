//! Container log lines and Docker's `json-file` format.

use crate::{Result, StdStream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// One chunk of a container's output, stamped when the shim read it.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// When the shim read it from the container.
    pub time: SystemTime,
    /// stdout or stderr (a terminal's output is stdout).
    pub stream: StdStream,
    /// The bytes, ending in `\n` unless `partial`.
    pub line: Bytes,
    /// True when the line was cut (no newline yet when a size limit or
    /// the end of the stream was reached).
    pub partial: bool,
}

#[derive(Serialize, Deserialize)]
struct JsonLine<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: std::borrow::Cow<'a, str>,
    time: std::borrow::Cow<'a, str>,
}

impl LogEntry {
    /// Encode as one line of Docker's json-file log (with the trailing `\n`):
    /// `{"log":"hi\n","stream":"stdout","time":"2026-11-28T13:32:51.134804507Z"}`.
    ///
    /// ```
    /// use engine_core::{LogEntry, StdStream};
    /// let e = LogEntry { time: std::time::UNIX_EPOCH, stream: StdStream::Stdout,
    ///                    line: "hi\n".into(), partial: false };
    /// let json = e.to_json_line();
    /// assert_eq!(json, "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"1970-01-01T00:00:00.000000000Z\"}\n");
    /// assert_eq!(LogEntry::from_json_line(json.as_bytes()).unwrap(), e);
    /// ```
    pub fn to_json_line(&self) -> String {
        let j = JsonLine {
            log: String::from_utf8_lossy(&self.line),
            stream: self.stream.as_str().into(),
            time: crate::time::format_rfc3339(self.time).into(),
        };
        let mut s = serde_json::to_string(&j).expect("json of strings");
        s.push('\n');
        s
    }

    /// Decode one json-file line.
    pub fn from_json_line(line: &[u8]) -> Result<Self> {
        let j: JsonLine =
            serde_json::from_slice(line).map_err(|e| crate::Error::invalid("json-file log line", e.to_string()))?;
        let stream = match &*j.stream {
            "stderr" => StdStream::Stderr,
            "stdin" => StdStream::Stdin,
            _ => StdStream::Stdout,
        };
        let time = crate::time::parse_rfc3339(&j.time)
            .ok_or_else(|| crate::Error::invalid("json-file log time", j.time.to_string()))?;
        let partial = !j.log.ends_with('\n');
        Ok(LogEntry { time, stream, line: Bytes::from(j.log.into_owned()), partial })
    }
}

/// Where a shim sends each line of a container's output. The default writes
/// Docker's json-file format with size-based rotation; other sinks (journald,
/// syslog, a network collector) implement this trait.
pub trait LogDriver: Send {
    /// Record one entry. Called in the order the lines were read.
    fn write(&mut self, entry: &LogEntry) -> Result<()>;
    /// Make everything written so far durable.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
