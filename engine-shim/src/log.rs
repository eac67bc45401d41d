//! The container log: Docker's `json-file` format with size-based rotation
//! ([`JsonFileDriver`]), and the line splitter that turns the chunks the
//! shim reads into [`LogEntry`]s stamped with the time they were read.

use bytes::{Bytes, BytesMut};
use engine_core::{IoContext, LogConfig, LogDriver, LogEntry, Result, StdStream};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Lines longer than this are cut into partial entries (Docker's limit).
pub const MAX_LINE: usize = 16 * 1024;

/// Writes Docker's json-file log (`{"log","stream","time"}` per line) and
/// rotates it by size: `<path>` is live, `<path>.1` the newest rotated file,
/// up to `<path>.<max_files>`.
///
/// ```
/// use engine_core::{LogConfig, LogDriver, LogEntry, StdStream};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("c-json.log");
/// let mut log = engine_shim::JsonFileDriver::open(&LogConfig { path: path.clone(), max_size: None, max_files: 1 })?;
/// log.write(&LogEntry { time: std::time::SystemTime::now(), stream: StdStream::Stdout, line: "hi\n".into(), partial: false })?;
/// log.flush()?;
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.starts_with("{\"log\":\"hi\\n\",\"stream\":\"stdout\""));
/// # Ok::<(), engine_core::Error>(())
/// ```
#[derive(Debug)]
pub struct JsonFileDriver {
    path: PathBuf,
    max_size: Option<u64>,
    max_files: u32,
    file: File,
    size: u64,
}

impl JsonFileDriver {
    /// Open (append to) the log file of `cfg`.
    pub fn open(cfg: &LogConfig) -> Result<Self> {
        let file = open_append(&cfg.path)?;
        let size = file.metadata().context(|| format!("stat {}", cfg.path.display()))?.len();
        Ok(JsonFileDriver { path: cfg.path.clone(), max_size: cfg.max_size, max_files: cfg.max_files, file, size })
    }

    /// The live log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> Result<()> {
        if self.max_files == 0 {
            self.file.set_len(0).context(|| format!("truncate {}", self.path.display()))?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.max_files));
            for n in (1..self.max_files).rev() {
                let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            std::fs::rename(&self.path, self.rotated(1)).context(|| format!("rotate {}", self.path.display()))?;
            self.file = open_append(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).append(true).open(path).context(|| format!("open log file {}", path.display()))
}

impl LogDriver for JsonFileDriver {
    fn write(&mut self, entry: &LogEntry) -> Result<()> {
        let line = entry.to_json_line();
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(line.as_bytes()).context(|| format!("write log file {}", self.path.display()))?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file.sync_data().context(|| format!("sync log file {}", self.path.display()))
    }
}

/// Cuts one stream's chunks into lines. A line is stamped with the time its
/// first byte was read; a line without newline is held until the newline
/// comes, it reaches [`MAX_LINE`] or the stream ends.
#[derive(Debug)]
pub struct LineSplitter {
    stream: StdStream,
    pending: BytesMut,
    since: SystemTime,
}

impl LineSplitter {
    /// A splitter for `stream`.
    pub fn new(stream: StdStream) -> Self {
        LineSplitter { stream, pending: BytesMut::new(), since: SystemTime::UNIX_EPOCH }
    }

    /// Feed a chunk read at `time`; `out` receives each complete entry.
    pub fn push(&mut self, mut data: &[u8], time: SystemTime, out: &mut dyn FnMut(LogEntry)) {
        while !data.is_empty() {
            if self.pending.is_empty() {
                self.since = time;
            }
            let room = MAX_LINE - self.pending.len();
            match data.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&data[..=i]);
                    data = &data[i + 1..];
                    out(self.take(false));
                }
                None => {
                    let n = room.min(data.len());
                    self.pending.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if self.pending.len() >= MAX_LINE {
                        out(self.take(true));
                    }
                }
            }
        }
    }

    /// The stream ended: hand out what is held as a partial entry.
    pub fn finish(&mut self, out: &mut dyn FnMut(LogEntry)) {
        if !self.pending.is_empty() {
            out(self.take(true));
        }
        self.pending = BytesMut::new();
    }

    fn take(&mut self, partial: bool) -> LogEntry {
        let line: Bytes = self.pending.split().freeze();
        LogEntry { time: self.since, stream: self.stream, line, partial }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn splits_lines_and_stamps_first_byte_time() {
        let mut s = LineSplitter::new(StdStream::Stderr);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let t1 = t0 + Duration::from_secs(1);
        let mut got = Vec::new();
        s.push(b"a\nbc", t0, &mut |e| got.push(e));
        s.push(b"d\ne", t1, &mut |e| got.push(e));
        s.finish(&mut |e| got.push(e));
        let lines: Vec<_> = got.iter().map(|e| (e.line.clone(), e.time, e.partial)).collect();
        assert_eq!(
            lines,
            vec![(Bytes::from("a\n"), t0, false), (Bytes::from("bcd\n"), t0, false), (Bytes::from("e"), t1, true)]
        );
        assert!(got.iter().all(|e| e.stream == StdStream::Stderr));
    }

    #[test]
    fn long_lines_are_cut_at_max_line() {
        let mut s = LineSplitter::new(StdStream::Stdout);
        let mut got = Vec::new();
        let big = vec![b'x'; MAX_LINE * 2 + 5];
        s.push(&big, SystemTime::now(), &mut |e| got.push(e));
        s.push(b"\n", SystemTime::now(), &mut |e| got.push(e));
        assert_eq!(got.len(), 3);
        assert!(got[0].partial && got[1].partial && !got[2].partial);
        assert_eq!(got[2].line.len(), 6);
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut d = JsonFileDriver::open(&LogConfig { path: path.clone(), max_size: Some(200), max_files: 2 }).unwrap();
        for i in 0..40 {
            let e = LogEntry {
                time: SystemTime::now(),
                stream: StdStream::Stdout,
                line: format!("line {i}\n").into(),
                partial: false,
            };
            d.write(&e).unwrap();
        }
        d.flush().unwrap();
        let mut names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, vec!["c-json.log", "c-json.log.1", "c-json.log.2"]);
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len <= 200, "{n} is {len} bytes");
        }
        let live = std::fs::read_to_string(&path).unwrap();
        let last = live.lines().last().unwrap();
        assert_eq!(LogEntry::from_json_line(last.as_bytes()).unwrap().line, Bytes::from("line 39\n"));
    }
}
