//! The container log: a file in Docker's `json-file` or `local` format with
//! size-based rotation ([`FileLogDriver`]), a log plugin's FIFO
//! ([`FifoDriver`]), and the line splitter that turns the chunks the shim
//! reads into [`LogEntry`]s stamped with the time they were read.

use bytes::{Bytes, BytesMut};
use engine_core::logs::LogFormat;
use engine_core::{IoContext, LogConfig, LogDriver, LogEntry, Result, StdStream};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// Lines longer than this are cut into partial entries (Docker's limit).
pub const MAX_LINE: usize = 16 * 1024;

/// Writes a log file in one of the [`LogFormat`]s (Docker's json-file,
/// `{"log","stream","time"}` per line, or Docker's `local` frames) and
/// rotates it by size: `<path>` is live, `<path>.1` the newest rotated file,
/// up to `<path>.<max_files>`; with `max_files` 0 the live file is truncated.
///
/// ```
/// use engine_core::{LogConfig, LogDriver, LogEntry, StdStream};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("c-json.log");
/// let mut log = engine_shim::FileLogDriver::open(&LogConfig::json_file(&path).max_files(1))?;
/// log.write(&LogEntry { time: std::time::SystemTime::now(), stream: StdStream::Stdout, line: "hi\n".into(), partial: false })?;
/// log.flush()?;
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.starts_with("{\"log\":\"hi\\n\",\"stream\":\"stdout\""));
/// # Ok::<(), engine_core::Error>(())
/// ```
#[derive(Debug)]
pub struct FileLogDriver {
    path: PathBuf,
    format: LogFormat,
    max_size: Option<u64>,
    max_files: u32,
    file: File,
    size: u64,
}

impl FileLogDriver {
    /// Open (append to) the log file of `cfg`.
    pub fn open(cfg: &LogConfig) -> Result<Self> {
        let file = open_append(&cfg.path)?;
        let size = file.metadata().context(|| format!("stat {}", cfg.path.display()))?.len();
        Ok(FileLogDriver {
            path: cfg.path.clone(),
            format: cfg.format,
            max_size: cfg.max_size,
            max_files: cfg.max_files,
            file,
            size,
        })
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

impl LogDriver for FileLogDriver {
    fn write(&mut self, entry: &LogEntry) -> Result<()> {
        let line = self.format.encode(entry);
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&line).context(|| format!("write log file {}", self.path.display()))?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file.sync_data().context(|| format!("sync log file {}", self.path.display()))
    }

    fn reopen(&mut self) -> Result<()> {
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata().context(|| format!("stat {}", self.path.display()))?.len();
        Ok(())
    }
}

/// How long the shim waits for a log plugin to open its FIFO for reading.
const FIFO_OPEN_WAIT: Duration = Duration::from_secs(10);
/// Entries held for a slow plugin before new ones are dropped.
const FIFO_QUEUE_LIMIT: usize = 8 << 20;

/// Feeds a log plugin: every entry is written into the FIFO the engine made
/// for it (`LogDriver.StartLogging`), as a length-prefixed protobuf
/// `LogEntry`. Writes never block the shim: a task writes the queue out;
/// when the plugin is slow, up to 8 MiB is held, then entries are dropped
/// (counted in a warning); when the plugin dies (`EPIPE`), writing stops and
/// the container runs on, its local cache complete. Dropping the driver
/// closes the FIFO once the queue is written (end of stream for the plugin).
///
/// Must be made inside a tokio runtime.
#[derive(Debug)]
pub struct FifoDriver {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
    queued: Arc<AtomicUsize>,
    dropped: u64,
    path: PathBuf,
}

impl FifoDriver {
    /// Start feeding the FIFO at `path` (it must exist; the plugin opens it
    /// for reading, within 10 s).
    pub fn open(path: &Path) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(feed(path.to_path_buf(), rx, queued.clone()));
        FifoDriver { tx: Some(tx), queued, dropped: 0, path: path.to_path_buf() }
    }
}

async fn feed(path: PathBuf, mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>, queued: Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let deadline = Instant::now() + FIFO_OPEN_WAIT;
    let mut out = loop {
        match tokio::net::unix::pipe::OpenOptions::new().open_sender(&path) {
            Ok(s) => break Some(s),
            // No reader yet: the plugin opens it as it handles StartLogging.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => {
                tracing::warn!("log plugin FIFO {}: {e}; its entries are dropped", path.display());
                break None;
            }
        }
    };
    while let Some(frame) = rx.recv().await {
        queued.fetch_sub(frame.len(), Ordering::Relaxed);
        if let Some(s) = out.as_mut() {
            if let Err(e) = s.write_all(&frame).await {
                tracing::warn!("log plugin FIFO {}: {e}; no more entries go to the plugin", path.display());
                out = None;
            }
        }
    }
}

impl LogDriver for FifoDriver {
    fn write(&mut self, entry: &LogEntry) -> Result<()> {
        let frame = entry.encode_plugin_frame();
        if self.queued.load(Ordering::Relaxed) + frame.len() > FIFO_QUEUE_LIMIT {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    "log plugin FIFO {}: plugin too slow, {} entries dropped",
                    self.path.display(),
                    self.dropped
                );
            }
            return Ok(());
        }
        self.queued.fetch_add(frame.len(), Ordering::Relaxed);
        if let Some(tx) = &self.tx {
            let _ = tx.send(frame);
        }
        Ok(())
    }
}

/// Writes every entry to each of its drivers, in order (a plugin's FIFO and
/// its local cache).
struct Tee(Vec<Box<dyn LogDriver>>);

impl LogDriver for Tee {
    fn write(&mut self, entry: &LogEntry) -> Result<()> {
        let mut r = Ok(());
        for d in &mut self.0 {
            if let Err(e) = d.write(entry) {
                r = Err(e);
            }
        }
        r
    }
    fn flush(&mut self) -> Result<()> {
        let mut r = Ok(());
        for d in &mut self.0 {
            if let Err(e) = d.flush() {
                r = Err(e);
            }
        }
        r
    }
}

/// The driver a [`LogConfig`] asks for: its file, and with `fifo` the
/// plugin's FIFO as well. Must be called inside a tokio runtime when
/// `fifo` is set.
pub fn open_log(cfg: &LogConfig) -> Result<Box<dyn LogDriver>> {
    let file = Box::new(FileLogDriver::open(cfg)?);
    Ok(match &cfg.fifo {
        Some(fifo) => Box::new(Tee(vec![Box::new(FifoDriver::open(fifo)), file])),
        None => file,
    })
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

    fn frames(mut data: &[u8]) -> Vec<LogEntry> {
        let mut out = Vec::new();
        while data.len() >= 4 {
            let n = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            out.push(LogEntry::from_protobuf(&data[4..4 + n]).unwrap());
            data = &data[4 + n..];
        }
        assert!(data.is_empty(), "a cut frame");
        out
    }

    /// A FIFO in a temp dir, a plugin's side reading it on a thread, and a
    /// [`FifoDriver`] writing to it.
    fn plugin_fifo<T: Send + 'static>(
        plugin: impl FnOnce(PathBuf) -> T + Send + 'static,
    ) -> (tempfile::TempDir, std::thread::JoinHandle<T>, FifoDriver) {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("log.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let f = fifo.clone();
        let reader = std::thread::spawn(move || plugin(f));
        let d = FifoDriver::open(&fifo);
        (dir, reader, d)
    }

    #[tokio::test]
    async fn fifo_driver_feeds_a_plugin_every_entry_in_order_then_closes() {
        // The plugin's side: a blocking open that waits for the writer, read to EOF.
        let (_dir, reader, mut d) = plugin_fifo(|f| std::fs::read(f).unwrap());
        let sent: Vec<LogEntry> = (0..2000)
            .map(|i| LogEntry {
                time: SystemTime::now(),
                stream: if i % 7 == 0 { StdStream::Stderr } else { StdStream::Stdout },
                line: format!("entry {i}\n").into(),
                partial: false,
            })
            .collect();
        for e in &sent {
            d.write(e).unwrap();
        }
        drop(d);
        let data = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
        assert_eq!(frames(&data), sent);
    }

    #[tokio::test]
    async fn fifo_driver_survives_a_plugin_that_goes_away() {
        // A plugin that reads one frame's worth and dies.
        let (_dir, reader, mut d) = plugin_fifo(|f| {
            use std::io::Read;
            let mut buf = [0u8; 4];
            std::fs::File::open(f).unwrap().read_exact(&mut buf).unwrap();
        });
        let e = LogEntry {
            time: SystemTime::now(),
            stream: StdStream::Stdout,
            line: vec![b'x'; 1000].into(),
            partial: true,
        };
        for _ in 0..200 {
            d.write(&e).unwrap();
        }
        tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
        // Writes after the reader is gone neither fail nor block.
        for _ in 0..200 {
            d.write(&e).unwrap();
            tokio::task::yield_now().await;
        }
        drop(d);
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut d = FileLogDriver::open(
            &LogConfig::default()
                .path(path.clone())
                .max_size(Some(200))
                .max_files(2)
                .format(Default::default())
                .fifo(None),
        )
        .unwrap();
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
