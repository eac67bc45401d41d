//! Reading the log file a shim writes (json-file or local format): rotated
//! files oldest first, since/until/tail, and follow (until the container
//! stops).

use bytes::BytesMut;
use engine_core::logs::LogFormat;
use engine_core::{Error, LogEntry, LogOptions, Result, StdStream};
use futures::stream::BoxStream;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Tells the follower whether the container may still write.
pub(crate) type Running = Box<dyn Fn() -> bool + Send + Sync>;

fn wanted(e: &LogEntry, o: &LogOptions) -> bool {
    let stream_ok = match e.stream {
        StdStream::Stdout | StdStream::Stdin => o.stdout,
        StdStream::Stderr => o.stderr,
    };
    stream_ok && o.since.is_none_or(|s| e.time >= s) && o.until.is_none_or(|u| e.time < u)
}

/// The log file and its rotated predecessors, oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for n in 1..1000 {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if p.exists() {
            rotated.push(p);
        } else {
            break;
        }
    }
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

/// Decode the complete entries in `buf`, leaving an incomplete one there.
fn parse_entries(format: LogFormat, buf: &mut BytesMut, out: &mut Vec<LogEntry>) {
    let used = format.decode(buf, out);
    let _ = buf.split_to(used);
}

/// Read everything stored now; returns the entries and the offset reached in
/// the live file (its inode too, to notice a rotation).
fn read_stored(path: &Path, format: LogFormat) -> Result<(Vec<LogEntry>, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut entries = Vec::new();
    let mut live_off = 0;
    let mut live_ino = 0;
    for f in files(path) {
        let mut file = match std::fs::File::open(&f) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("opening log {}", f.display()), e)),
        };
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| Error::io(format!("reading log {}", f.display()), e))?;
        // Only complete entries count; a partial last one is read again later.
        let complete = format.decode(&data, &mut entries);
        if f == path {
            live_off = complete as u64;
            live_ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        }
    }
    Ok((entries, live_off, live_ino))
}

/// A stream of log entries per `opts`. With `follow`, new lines are streamed
/// until `running()` turns false and the file has been drained.
pub(crate) fn stream(
    path: PathBuf,
    format: LogFormat,
    opts: LogOptions,
    running: Running,
) -> BoxStream<'static, Result<LogEntry>> {
    let (tx, rx) = mpsc::channel::<Result<LogEntry>>(256);
    tokio::spawn(async move {
        let p = path.clone();
        let stored = tokio::task::spawn_blocking(move || read_stored(&p, format)).await;
        let (entries, mut off, mut ino) = match stored {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(Error::Other(format!("log reader: {e}")))).await;
                return;
            }
        };
        let mut selected: Vec<LogEntry> = entries.into_iter().filter(|e| wanted(e, &opts)).collect();
        if let Some(t) = opts.tail {
            let skip = selected.len().saturating_sub(t);
            selected.drain(..skip);
        }
        for e in selected {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
        if !opts.follow {
            return;
        }
        let mut buf = BytesMut::new();
        let mut idle_after_stop = 0;
        loop {
            let was_running = running();
            let p = path.clone();
            let res = tokio::task::spawn_blocking(move || read_new(&p, off, ino)).await;
            let (data, new_off, new_ino, rotated) = match res {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(_) => return,
            };
            if rotated {
                buf.clear();
            }
            off = new_off;
            ino = new_ino;
            let got = !data.is_empty();
            buf.extend_from_slice(&data);
            let mut out = Vec::new();
            parse_entries(format, &mut buf, &mut out);
            for e in out.into_iter().filter(|e| wanted(e, &opts)) {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            if opts.until.is_some_and(|u| std::time::SystemTime::now() >= u) {
                return;
            }
            if !was_running && !got {
                // Stopped and drained (one extra pass covers a last flush).
                idle_after_stop += 1;
                if idle_after_stop >= 2 {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            if !got {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// New bytes of the live file after `off`; follows a rotation (new inode or
/// a shorter file) by reading the rest of the rotated file, then the new one.
fn read_new(path: &Path, off: u64, ino: u64) -> Result<(Vec<u8>, u64, u64, bool)> {
    use std::os::unix::fs::MetadataExt;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), off, ino, false)),
        Err(e) => return Err(Error::io(format!("opening log {}", path.display()), e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(format!("stat of log {}", path.display()), e))?;
    let mut data = Vec::new();
    let mut rotated = false;
    let mut start = off;
    if (ino != 0 && meta.ino() != ino) || meta.len() < off {
        // Rotated: finish the old file (now `.1`) from where we were.
        let old = PathBuf::from(format!("{}.1", path.display()));
        if let Ok(mut f) = std::fs::File::open(&old) {
            if f.metadata().map(|m| m.ino() == ino).unwrap_or(false) && f.seek(SeekFrom::Start(off)).is_ok() {
                let _ = f.read_to_end(&mut data);
            }
        }
        rotated = data.is_empty();
        start = 0;
    }
    file.seek(SeekFrom::Start(start)).map_err(|e| Error::io(format!("seeking log {}", path.display()), e))?;
    let before = data.len();
    file.read_to_end(&mut data).map_err(|e| Error::io(format!("reading log {}", path.display()), e))?;
    let new_off = start + (data.len() - before) as u64;
    Ok((data, new_off, meta.ino(), rotated))
}
