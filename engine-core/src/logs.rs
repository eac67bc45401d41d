//! The log tier: where a container's output goes, and how it is read back.
//!
//! Docker names a container's logging by a driver and its options
//! (`HostConfig.LogConfig {Type, Config}`, `docker run --log-driver x
//! --log-opt k=v`): a [`LogSpec`]. [`LogSpec::resolve`] checks it and says
//! what it means, a [`LogTarget`]:
//!
//! | driver | written by | `docker logs` |
//! |---|---|---|
//! | `json-file` (default) | the shim, Docker's json-file format, rotated by `max-size`/`max-file` | reads the live file and its rotated predecessors `<file>.1..` in order |
//! | `local` | the shim, Docker's `local` format ([`LogEntry::encode_local`]), rotated by default (20 MiB, 5 files) | as json-file |
//! | `none` | nothing is kept (attach still works) | fails with [`READ_NOT_SUPPORTED`], as dockerd does |
//! | a plugin's name | the shim, into a FIFO the plugin reads ([`LogPlugins`]); a `local` cache beside it (Docker's dual logging) | reads the cache |
//!
//! Whoever writes, it is the shim: it outlives the daemon and the manager, so
//! no line is lost while either restarts. Each line goes through a
//! [`LogDriver`], the sink a shim writes to in the order lines were read.
//!
//! Options are checked at create, with Docker's wording where Docker has
//! one; an option the engine cannot honour (`compress=true`, `tag`, `env`,
//! `labels`) is refused, never ignored.
//!
//! ```
//! use engine_core::logs::{LogFormat, LogSpec, LogTarget};
//! let spec = LogSpec::new("json-file").opt("max-size", "10k").opt("max-file", "3");
//! match spec.resolve()? {
//!     LogTarget::File(f) => {
//!         assert_eq!(f.format, LogFormat::JsonFile);
//!         assert_eq!((f.max_size, f.max_file), (Some(10_000), 3));
//!     }
//!     other => unreachable!("{other:?}"),
//! }
//! assert!(LogSpec::new("json-file").opt("max-sise", "1m").resolve().unwrap_err().is_invalid_input());
//! assert!(matches!(LogSpec::new("none").resolve()?, LogTarget::None));
//! # Ok::<(), engine_core::Error>(())
//! ```

use crate::{Error, Result, StdStream};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Docker's default log driver.
pub const JSON_FILE: &str = "json-file";
/// Docker's `local` driver: a compact binary format, rotated by default.
pub const LOCAL: &str = "local";
/// Keep nothing.
pub const NONE: &str = "none";
/// Kubernetes' CRI log format at a path the caller names (option `path`,
/// absolute): what a CRI server asks for on kubelet's behalf.
pub const CRI: &str = "cri";
/// The message (and 501) dockerd gives `docker logs` for a driver that
/// cannot be read back (`none`).
pub const READ_NOT_SUPPORTED: &str = "configured logging driver does not support reading";

/// The `local` driver's defaults, as Docker's: 20 MiB per file, 5 files.
pub const LOCAL_MAX_SIZE: u64 = 20 << 20;
/// See [`LOCAL_MAX_SIZE`].
pub const LOCAL_MAX_FILE: u32 = 5;

/// A container's logging as Docker names it (`HostConfig.LogConfig`): a
/// driver and its options. An empty driver means "the engine's default"
/// (see [`LogSpec::with_default`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogSpec {
    /// `json-file`, `local`, `none`, or a log plugin's name; empty: the default.
    #[serde(default)]
    pub driver: String,
    /// Driver options (`--log-opt`).
    #[serde(default)]
    pub opts: BTreeMap<String, String>,
}

crate::setters::setters!(LogSpec { driver: String, opts: BTreeMap<String, String> });

impl LogSpec {
    /// A spec for `driver` with no options.
    pub fn new(driver: impl Into<String>) -> Self {
        LogSpec { driver: driver.into(), opts: BTreeMap::new() }
    }

    /// Add an option.
    pub fn opt(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.opts.insert(key.into(), value.into());
        self
    }

    /// The driver's name, `json-file` when none was chosen.
    pub fn driver_name(&self) -> &str {
        if self.driver.is_empty() {
            JSON_FILE
        } else {
            &self.driver
        }
    }

    /// Fill in a daemon's default as dockerd does: no driver takes the
    /// default's driver; a spec for the default's driver takes the
    /// default's options it does not set itself.
    ///
    /// ```
    /// use engine_core::logs::LogSpec;
    /// let daemon = LogSpec::new("local").opt("max-size", "1m");
    /// let got = LogSpec::default().opt("max-file", "2").with_default(&daemon);
    /// assert_eq!(got, LogSpec::new("local").opt("max-size", "1m").opt("max-file", "2"));
    /// assert_eq!(LogSpec::new("none").with_default(&daemon), LogSpec::new("none"));
    /// ```
    pub fn with_default(mut self, default: &LogSpec) -> LogSpec {
        if self.driver.is_empty() {
            self.driver = default.driver_name().to_string();
        }
        if self.driver == default.driver_name() {
            for (k, v) in &default.opts {
                self.opts.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        self
    }

    /// The `path` option of the `cri` driver: where the log file goes
    /// (absolute, no `..`).
    ///
    /// ```
    /// use engine_core::logs::LogSpec;
    /// let s = LogSpec::new("cri").opt("path", "/var/log/pods/p/c/0.log");
    /// assert_eq!(s.cri_path().unwrap(), std::path::Path::new("/var/log/pods/p/c/0.log"));
    /// assert!(LogSpec::new("cri").opt("path", "rel.log").cri_path().is_err());
    /// ```
    pub fn cri_path(&self) -> Result<&Path> {
        let p = self
            .opts
            .get("path")
            .map(Path::new)
            .ok_or_else(|| Error::invalid("log opt", "the cri log driver needs path=/absolute/file"))?;
        if !p.is_absolute()
            || p.components().any(|c| matches!(c, std::path::Component::ParentDir))
            || p.file_name().is_none()
        {
            return Err(Error::invalid(
                "log opt",
                format!("path={}: an absolute file path without .. expected", p.display()),
            ));
        }
        Ok(p)
    }

    /// Check the spec and say what it means. Built-in drivers' options are
    /// checked here; a plugin's options are the plugin's to check (apart
    /// from the `cache-*` ones of the local cache, checked here).
    pub fn resolve(&self) -> Result<LogTarget> {
        match self.driver_name() {
            JSON_FILE => file_target(JSON_FILE, LogFormat::JsonFile, &self.opts, None, 1).map(LogTarget::File),
            LOCAL => file_target(LOCAL, LogFormat::Local, &self.opts, Some(LOCAL_MAX_SIZE), LOCAL_MAX_FILE)
                .map(LogTarget::File),
            CRI => {
                self.cri_path()?;
                let mut opts = self.opts.clone();
                opts.remove("path");
                // kubelet rotates CRI logs itself (rename, then
                // ReopenContainerLog): a second rotator would race it.
                if let Some(k) = opts.keys().find(|k| matches!(k.as_str(), "max-size" | "max-file")) {
                    return Err(Error::invalid(
                        "log opt",
                        format!(
                            "{k}: the cri log driver does not rotate (kubelet rotates and asks the shim to reopen)"
                        ),
                    ));
                }
                file_target(CRI, LogFormat::Cri, &opts, None, 1).map(LogTarget::File)
            }
            NONE => match self.opts.keys().next() {
                Some(k) => Err(Error::invalid("log opt", format!("unknown log opt '{k}' for none log driver"))),
                None => Ok(LogTarget::None),
            },
            name => {
                let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-:/".contains(c));
                if !ok {
                    return Err(Error::invalid(
                        "log driver",
                        format!("logger: no log driver named '{name}' is registered"),
                    ));
                }
                let mut cache_opts = BTreeMap::new();
                let mut opts = BTreeMap::new();
                for (k, v) in &self.opts {
                    match k.as_str() {
                        "cache-disabled" => {
                            match parse_bool(k, v)? {
                                false => {}
                                true => return Err(Error::invalid(
                                    "log opt",
                                    "cache-disabled=true is not supported: the local cache is what docker logs reads",
                                )),
                            }
                        }
                        "cache-max-size" => drop(cache_opts.insert("max-size".to_string(), v.clone())),
                        "cache-max-file" => drop(cache_opts.insert("max-file".to_string(), v.clone())),
                        "cache-compress" => drop(cache_opts.insert("compress".to_string(), v.clone())),
                        _ => drop(opts.insert(k.clone(), v.clone())),
                    }
                }
                let cache = file_target(LOCAL, LogFormat::Local, &cache_opts, Some(LOCAL_MAX_SIZE), LOCAL_MAX_FILE)
                    .map_err(|e| match e {
                        Error::InvalidInput { what, reason } => {
                            Error::InvalidInput { what, reason: format!("{reason} (the log cache of {name})") }
                        }
                        e => e,
                    })?;
                Ok(LogTarget::Plugin { name: name.to_string(), opts, cache })
            }
        }
    }
}

/// What a [`LogSpec`] means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Keep nothing (`none`).
    None,
    /// A file the shim writes, maybe rotated (`json-file`, `local`).
    File(FileLog),
    /// A log plugin fed through a FIFO, plus a local cache `docker logs` reads.
    Plugin {
        /// The plugin's name.
        name: String,
        /// The options for the plugin (without the `cache-*` ones).
        opts: BTreeMap<String, String>,
        /// The local cache.
        cache: FileLog,
    },
}

/// A log file's format and rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLog {
    /// The encoding.
    pub format: LogFormat,
    /// Rotate when the live file would grow past this (`None`: never).
    pub max_size: Option<u64>,
    /// Docker's `max-file`: how many files to keep, the live one included
    /// (1: the live file is truncated instead of rotated).
    pub max_file: u32,
}

impl FileLog {
    /// How many rotated files (`<file>.1`, `<file>.2`...) are kept beside the live one.
    pub fn rotated_files(&self) -> u32 {
        self.max_file.saturating_sub(1)
    }
}

/// How a log file encodes entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Docker's json-file: one `{"log","stream","time"}` object per line.
    #[default]
    JsonFile,
    /// Docker's `local` format: each entry a protobuf `LogEntry` with its
    /// length (4 bytes, big-endian) before and after it.
    Local,
    /// Kubernetes' CRI format, one line per entry:
    /// `<RFC 3339 time with nanoseconds> <stdout|stderr> <P|F> <line>`
    /// (`P` a partial line, `F` the full line's last piece).
    Cri,
}

impl LogFormat {
    /// Encode one entry.
    pub fn encode(self, e: &LogEntry) -> Vec<u8> {
        match self {
            LogFormat::JsonFile => e.to_json_line().into_bytes(),
            LogFormat::Local => e.encode_local(),
            LogFormat::Cri => e.to_cri_line(),
        }
    }

    /// Decode the complete entries at the start of `buf` into `out`;
    /// returns how many bytes they took (a trailing incomplete entry is
    /// left for later). Undecodable json lines are skipped; a corrupt
    /// `local` frame ends decoding (the rest is unreadable).
    pub fn decode(self, buf: &[u8], out: &mut Vec<LogEntry>) -> usize {
        let mut used = 0;
        match self {
            LogFormat::JsonFile => {
                while let Some(pos) = buf[used..].iter().position(|b| *b == b'\n') {
                    let line = &buf[used..used + pos];
                    used += pos + 1;
                    if !line.is_empty() {
                        if let Ok(e) = LogEntry::from_json_line(line) {
                            out.push(e);
                        }
                    }
                }
            }
            LogFormat::Local => {
                while buf.len() - used >= 4 {
                    let n = u32::from_be_bytes(buf[used..used + 4].try_into().expect("4 bytes")) as usize;
                    if buf.len() - used < n + 8 {
                        break;
                    }
                    let msg = &buf[used + 4..used + 4 + n];
                    let tail = u32::from_be_bytes(buf[used + 4 + n..used + 8 + n].try_into().expect("4 bytes"));
                    match LogEntry::from_protobuf(msg) {
                        Ok(e) if tail as usize == n => out.push(e),
                        _ => return buf.len(),
                    }
                    used += n + 8;
                }
            }
            LogFormat::Cri => {
                while let Some(pos) = buf[used..].iter().position(|b| *b == b'\n') {
                    let line = &buf[used..used + pos];
                    used += pos + 1;
                    if let Some(e) = LogEntry::from_cri_line(line) {
                        out.push(e);
                    }
                }
            }
        }
        used
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Error::invalid("log opt", format!("{key}={v:?}: not a boolean"))),
    }
}

/// A size such as `10k`, `20m`, `1.5g`, `100` (bytes). With `binary`,
/// units are powers of 1024 (Docker's `local` driver); otherwise powers of
/// 1000 (Docker's `json-file`, `units.FromHumanSize`).
fn parse_size(s: &str, binary: bool) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(&t);
    let (num, exp) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1),
        'm' => (&t[..t.len() - 1], 2),
        'g' => (&t[..t.len() - 1], 3),
        't' => (&t[..t.len() - 1], 4),
        _ => (t, 0),
    };
    let n: f64 = num.trim().parse().ok()?;
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let v = n * base.powi(exp);
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

fn file_target(
    driver: &str,
    format: LogFormat,
    opts: &BTreeMap<String, String>,
    default_size: Option<u64>,
    default_files: u32,
) -> Result<FileLog> {
    let mut f = FileLog { format, max_size: default_size, max_file: default_files };
    let bad = |k: &str, why: String| Error::invalid("log opt", format!("{k}: {why}"));
    for (k, v) in opts {
        match k.as_str() {
            "max-size" => {
                let n =
                    parse_size(v, format == LogFormat::Local).ok_or_else(|| bad(k, format!("invalid size: {v:?}")))?;
                if n == 0 {
                    return Err(bad(k, "max-size must be a positive number".into()));
                }
                f.max_size = Some(n);
            }
            "max-file" => {
                let n: i64 = v.trim().parse().map_err(|_| bad(k, format!("{v:?} is not a number")))?;
                if n < 1 {
                    return Err(bad(k, "max-file cannot be less than 1".into()));
                }
                f.max_file = n.min(u32::MAX as i64) as u32;
            }
            "compress" => {
                if parse_bool(k, v)? {
                    return Err(bad(
                        k,
                        format!("compressed rotated files are not supported by this engine's {driver} driver; use compress=false"),
                    ));
                }
            }
            "labels" | "labels-regex" | "env" | "env-regex" | "tag" if format == LogFormat::JsonFile => {
                return Err(bad(k, format!("not supported by this engine's {driver} driver (it would be ignored)")));
            }
            _ => return Err(Error::invalid("log opt", format!("unknown log opt '{k}' for {driver} log driver"))),
        }
    }
    if f.max_size.is_none() {
        // Without a size there is no rotation (Docker: max-file needs max-size).
        f.max_file = 1;
    }
    Ok(f)
}

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

    /// Encode as one line of Kubernetes' CRI log format (with the trailing
    /// `\n`): `2026-11-28T13:32:51.134804507Z stdout F hi`.
    ///
    /// ```
    /// use engine_core::{LogEntry, StdStream};
    /// let e = LogEntry { time: std::time::UNIX_EPOCH, stream: StdStream::Stderr,
    ///                    line: "hi\n".into(), partial: false };
    /// let l = e.to_cri_line();
    /// assert_eq!(l, b"1970-01-01T00:00:00.000000000Z stderr F hi\n");
    /// assert_eq!(LogEntry::from_cri_line(&l[..l.len() - 1]).unwrap(), e);
    /// ```
    pub fn to_cri_line(&self) -> Vec<u8> {
        let body = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        let stream = if self.stream == StdStream::Stderr { "stderr" } else { "stdout" };
        let tag = if self.partial { 'P' } else { 'F' };
        let mut out = format!("{} {stream} {tag} ", crate::time::format_rfc3339(self.time)).into_bytes();
        out.extend_from_slice(body);
        out.push(b'\n');
        out
    }

    /// Decode one CRI log line (without its `\n`); `None` if malformed.
    pub fn from_cri_line(line: &[u8]) -> Option<Self> {
        let mut it = line.splitn(4, |b| *b == b' ');
        let time = crate::time::parse_rfc3339(std::str::from_utf8(it.next()?).ok()?)?;
        let stream = match it.next()? {
            b"stderr" => StdStream::Stderr,
            b"stdout" => StdStream::Stdout,
            _ => return None,
        };
        let partial = match it.next()? {
            b"P" => true,
            b"F" => false,
            _ => return None,
        };
        let mut body = it.next().unwrap_or_default().to_vec();
        if !partial {
            body.push(b'\n');
        }
        Some(LogEntry { time, stream, line: Bytes::from(body), partial })
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

    /// Encode as Docker's protobuf `LogEntry` (`api/types/plugins/logdriver`:
    /// `source`=1, `time_nano`=2, `line`=3, `partial`=4): the line without
    /// its newline, `partial` set when it had none. Encoded by hand (one
    /// small message; this crate stays free of a protobuf dependency).
    ///
    /// ```
    /// use engine_core::{LogEntry, StdStream};
    /// let e = LogEntry { time: std::time::UNIX_EPOCH + std::time::Duration::from_nanos(5),
    ///                    stream: StdStream::Stderr, line: "hi\n".into(), partial: false };
    /// let pb = e.to_protobuf();
    /// assert_eq!(pb, b"\x0a\x06stderr\x10\x05\x1a\x02hi");
    /// assert_eq!(LogEntry::from_protobuf(&pb).unwrap(), e);
    /// ```
    pub fn to_protobuf(&self) -> Vec<u8> {
        let line: &[u8] = if self.partial { &self.line } else { self.line.strip_suffix(b"\n").unwrap_or(&self.line) };
        let nanos = match self.time.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
            Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
        };
        let mut out = Vec::with_capacity(line.len() + 24);
        let source = self.stream.as_str().as_bytes();
        put_varint(&mut out, (1 << 3) | 2);
        put_varint(&mut out, source.len() as u64);
        out.extend_from_slice(source);
        if nanos != 0 {
            put_varint(&mut out, 2 << 3);
            put_varint(&mut out, nanos as u64);
        }
        if !line.is_empty() {
            put_varint(&mut out, (3 << 3) | 2);
            put_varint(&mut out, line.len() as u64);
            out.extend_from_slice(line);
        }
        if self.partial {
            put_varint(&mut out, 4 << 3);
            put_varint(&mut out, 1);
        }
        out
    }

    /// Decode Docker's protobuf `LogEntry` (unknown fields, such as
    /// `partial_log_metadata`, are skipped).
    pub fn from_protobuf(mut b: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::invalid("protobuf log entry", why.to_string());
        let (mut source, mut nanos, mut line, mut partial) = (&b""[..], 0i64, &b""[..], false);
        while !b.is_empty() {
            let key = get_varint(&mut b).ok_or_else(|| bad("truncated key"))?;
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    let v = get_varint(&mut b).ok_or_else(|| bad("truncated varint"))?;
                    match field {
                        2 => nanos = v as i64,
                        4 => partial = v != 0,
                        _ => {}
                    }
                }
                2 => {
                    let n = get_varint(&mut b).ok_or_else(|| bad("truncated length"))? as usize;
                    if n > b.len() {
                        return Err(bad("field longer than the message"));
                    }
                    let (v, rest) = b.split_at(n);
                    b = rest;
                    match field {
                        1 => source = v,
                        3 => line = v,
                        _ => {}
                    }
                }
                1 | 5 => {
                    let n = if wire == 1 { 8 } else { 4 };
                    if b.len() < n {
                        return Err(bad("truncated fixed field"));
                    }
                    b = &b[n..];
                }
                _ => return Err(bad("unknown wire type")),
            }
        }
        let stream = match source {
            b"stderr" => StdStream::Stderr,
            b"stdin" => StdStream::Stdin,
            _ => StdStream::Stdout,
        };
        let time = if nanos >= 0 {
            UNIX_EPOCH + Duration::from_nanos(nanos as u64)
        } else {
            UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
        };
        let mut l = line.to_vec();
        if !partial {
            l.push(b'\n');
        }
        Ok(LogEntry { time, stream, line: Bytes::from(l), partial })
    }

    /// One frame of Docker's `local` log file: the protobuf entry with its
    /// length (u32, big-endian) before and after it (the trailing length
    /// lets a reader walk the file backwards).
    pub fn encode_local(&self) -> Vec<u8> {
        let pb = self.to_protobuf();
        let n = (pb.len() as u32).to_be_bytes();
        let mut out = Vec::with_capacity(pb.len() + 8);
        out.extend_from_slice(&n);
        out.extend_from_slice(&pb);
        out.extend_from_slice(&n);
        out
    }

    /// One frame of Docker's log plugin stream (what `LogDriver.StartLogging`'s
    /// FIFO carries): the protobuf entry after its length (u32, big-endian).
    pub fn encode_plugin_frame(&self) -> Vec<u8> {
        let pb = self.to_protobuf();
        let mut out = Vec::with_capacity(pb.len() + 4);
        out.extend_from_slice(&(pb.len() as u32).to_be_bytes());
        out.extend_from_slice(&pb);
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Where a shim sends each line of a container's output: a file in one of
/// the [`LogFormat`]s, a plugin's FIFO, or any other sink (journald, a
/// collector) an embedder writes.
pub trait LogDriver: Send {
    /// Record one entry. Called in the order the lines were read. Must not
    /// block for long: the shim's single thread calls it.
    fn write(&mut self, entry: &LogEntry) -> Result<()>;
    /// Make everything written so far durable.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// Reopen the sink at the same place (a log file renamed by a rotator:
    /// later entries go to a new file at the original path).
    ///
    /// Optional: the default refuses with [`Error::Unsupported`].
    fn reopen(&mut self) -> Result<()> {
        Err(Error::Unsupported("this log driver cannot be reopened".into()))
    }
}

/// What a log plugin is told about the container it logs for (the `Info`
/// of Docker's `LogDriver.StartLogging`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogStart {
    /// The container's id.
    pub container_id: String,
    /// Its name (without the leading `/`).
    pub container_name: String,
    /// Its image reference.
    pub image: String,
    /// The options for the plugin (`--log-opt`, without `cache-*`).
    pub opts: BTreeMap<String, String>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
}

impl LogStart {
    /// Info for a container.
    pub fn new(container_id: impl Into<String>, container_name: impl Into<String>) -> Self {
        LogStart { container_id: container_id.into(), container_name: container_name.into(), ..Default::default() }
    }
}

/// Log drivers outside the engine: Docker's LogDriver plugins, which read a
/// container's entries from a FIFO the engine creates (length-prefixed
/// protobuf, [`LogEntry::encode_plugin_frame`]).
///
/// The manager calls [`LogPlugins::start`] before it launches a shim for a
/// container whose driver is a plugin, hands the FIFO to the shim (which
/// writes every entry into it, and into the local cache `docker logs`
/// reads), and calls [`LogPlugins::stop`] once that shim is done.
///
/// Errors: [`Error::NotFound`] (kind `"log driver"`) for a name no plugin
/// answers to; [`Error::Unavailable`] naming the plugin when it does not
/// answer (in bounded time) or answers an error.
#[async_trait]
pub trait LogPlugins: Send + Sync {
    /// Check that `driver` is a log plugin (activating it if needed).
    async fn check(&self, driver: &str) -> Result<()>;
    /// `LogDriver.StartLogging`: the plugin starts reading `fifo` (which
    /// exists) for the container `info` names.
    async fn start(&self, driver: &str, fifo: &Path, info: &LogStart) -> Result<()>;
    /// `LogDriver.StopLogging`: the container's output ended; the plugin
    /// drains the FIFO and lets go of it.
    async fn stop(&self, driver: &str, fifo: &Path) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str, partial: bool) -> LogEntry {
        LogEntry {
            time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            stream: StdStream::Stdout,
            line: Bytes::from(line.to_string()),
            partial,
        }
    }

    #[test]
    fn local_frames_round_trip_and_stop_at_a_partial_frame() {
        let a = entry("first\n", false);
        let b = entry("cut", true);
        let mut buf = a.encode_local();
        buf.extend(b.encode_local());
        let full = buf.len();
        buf.extend(&entry("third\n", false).encode_local()[..5]);
        let mut out = Vec::new();
        assert_eq!(LogFormat::Local.decode(&buf, &mut out), full);
        assert_eq!(out, vec![a, b]);
    }

    #[test]
    fn sizes_and_options_follow_docker() {
        assert_eq!(parse_size("10k", false), Some(10_000));
        assert_eq!(parse_size("10k", true), Some(10_240));
        assert_eq!(parse_size("1.5MB", false), Some(1_500_000));
        assert_eq!(parse_size("x", false), None);
        let local = LogSpec::new("local").resolve().unwrap();
        assert_eq!(
            local,
            LogTarget::File(FileLog { format: LogFormat::Local, max_size: Some(LOCAL_MAX_SIZE), max_file: 5 })
        );
        let bad = |s: LogSpec| s.resolve().unwrap_err().to_string();
        assert!(bad(LogSpec::new("json-file").opt("max-file", "0")).contains("max-file cannot be less than 1"));
        assert!(bad(LogSpec::new("json-file").opt("max-size", "-1")).contains("max-size"));
        assert!(bad(LogSpec::new("json-file").opt("compress", "true")).contains("compress"));
        assert!(bad(LogSpec::new("local").opt("foo", "1")).contains("unknown log opt 'foo' for local log driver"));
        assert!(bad(LogSpec::new("bad name")).contains("no log driver named 'bad name'"));
        // kubelet rotates CRI logs: the cri driver refuses rotation options.
        let cri = || LogSpec::new(CRI).opt("path", "/var/log/pods/p/c/0.log");
        assert!(bad(cri().opt("max-size", "10m")).contains("max-size: the cri log driver does not rotate"));
        assert!(bad(cri().opt("max-file", "2")).contains("max-file: the cri log driver does not rotate"));
        assert!(matches!(cri().resolve().unwrap(), LogTarget::File(FileLog { max_size: None, .. })));
        // max-file without max-size keeps one file, as Docker.
        let one = LogSpec::new("json-file").opt("max-file", "4").resolve().unwrap();
        assert!(matches!(one, LogTarget::File(FileLog { max_size: None, max_file: 1, .. })));
        match LogSpec::new("testlog").opt("x", "y").opt("cache-max-file", "2").resolve().unwrap() {
            LogTarget::Plugin { name, opts, cache } => {
                assert_eq!(name, "testlog");
                assert_eq!(opts.len(), 1);
                assert_eq!(cache.max_file, 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
