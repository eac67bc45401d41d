//! The content store: blobs named by their sha256, verified while written
//! and moved into place atomically, so a blob file never lies about its
//! digest.

use crate::digest::{hex_of, HashingWriter};
use engine_core::{Error, IoContext, Result};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Blobs under `<root>/blobs/sha256/<hex>`, temporary files under `<root>/tmp`.
#[derive(Clone, Debug)]
pub struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    /// Open (and create) the content store under `root`.
    pub fn open(root: &Path) -> Result<Blobs> {
        let dir = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        for d in [&dir, &tmp] {
            std::fs::create_dir_all(d).context(|| format!("create {}", d.display()))?;
        }
        Ok(Blobs { dir, tmp })
    }
    /// The directory of temporary files.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }
    /// The file holding `digest`.
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.join(hex_of(digest)?))
    }
    /// True if the blob is present.
    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }
    /// Size of a present blob.
    pub fn size(&self, digest: &str) -> Result<u64> {
        let p = self.path(digest)?;
        Ok(std::fs::metadata(&p).map_err(|e| blob_err(digest, e))?.len())
    }
    /// Open a present blob for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let p = self.path(digest)?;
        File::open(&p).map_err(|e| blob_err(digest, e))
    }
    /// Read a whole (small) blob.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open_blob(digest)?.read_to_end(&mut v).context(|| format!("read blob {digest}"))?;
        Ok(v)
    }
    /// Start writing a new blob.
    pub fn writer(&self) -> Result<BlobWriter> {
        let name = format!("blob-{}", &engine_core::random_hex64()[..24]);
        let path = self.tmp.join(name);
        let f = File::create(&path).context(|| format!("create {}", path.display()))?;
        Ok(BlobWriter {
            w: Some(HashingWriter::new(BufWriter::with_capacity(1 << 20, f))),
            tmp: path,
            dir: self.dir.clone(),
        })
    }
    /// Store `bytes`, checking them against `expected` if given.
    pub fn write_bytes(&self, bytes: &[u8], expected: Option<&str>) -> Result<String> {
        let d = crate::digest::sha256(bytes);
        if let Some(e) = expected {
            if e != d {
                return Err(Error::invalid(format!("blob {e}"), format!("content has digest {d}")));
            }
        }
        if self.has(&d) {
            return Ok(d);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).context(|| format!("write blob {d}"))?;
        Ok(w.commit(Some(&d))?.0)
    }
    /// Delete a blob (missing is fine).
    pub fn remove(&self, digest: &str) -> Result<()> {
        let p = self.path(digest)?;
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(blob_err(digest, e)),
            _ => Ok(()),
        }
    }
    /// Digests of every present blob.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).context(|| format!("read {}", self.dir.display()))? {
            let e = e.context(|| format!("read {}", self.dir.display()))?;
            if let Some(n) = e.file_name().to_str() {
                let d = format!("sha256:{n}");
                if hex_of(&d).is_ok() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

fn blob_err(digest: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::not_found("blob", digest)
    } else {
        Error::io(format!("blob {digest}"), e)
    }
}

/// A blob being written: hashed as it is written; [`BlobWriter::commit`]
/// fsyncs, verifies and renames it into place. Dropped uncommitted, the
/// temporary file is removed.
pub struct BlobWriter {
    w: Option<HashingWriter<BufWriter<File>>>,
    tmp: PathBuf,
    dir: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.as_mut().map(|w| w.write(buf)).unwrap_or(Ok(0))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.as_mut().map(|w| w.flush()).unwrap_or(Ok(()))
    }
}

impl BlobWriter {
    /// Finish: check the digest against `expected` (if given), fsync and
    /// move the blob into place. Returns `(digest, size)`.
    pub fn commit(mut self, expected: Option<&str>) -> Result<(String, u64)> {
        let Some(w) = self.w.take() else { return Err(Error::Other("blob writer already finished".into())) };
        let (buf, digest, size) = w.finish();
        let f = buf.into_inner().map_err(|e| Error::io(format!("write {}", self.tmp.display()), e.into_error()))?;
        if let Some(e) = expected {
            if e != digest {
                let _ = std::fs::remove_file(&self.tmp);
                return Err(Error::invalid(
                    format!("blob {e}"),
                    format!("content has digest {digest} ({size} bytes): digest mismatch"),
                ));
            }
        }
        f.sync_all().context(|| format!("fsync {}", self.tmp.display()))?;
        drop(f);
        let dest = self.dir.join(hex_of(&digest)?);
        std::fs::rename(&self.tmp, &dest).context(|| format!("rename blob into {}", dest.display()))?;
        let _ = crate::sys::fsync_dir(&self.dir);
        Ok((digest, size))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A reader that copies everything it reads into a writer.
pub(crate) struct TeeReader<R, W> {
    pub(crate) r: R,
    pub(crate) w: W,
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        self.w.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A blocking reader fed with chunks from an async task.
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    cur: bytes::Bytes,
    /// Whether the end must be marked by an empty chunk (else a closed
    /// channel is the end).
    strict: bool,
    ended: bool,
}

impl ChannelReader {
    /// The end of the data is the channel closing.
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>) -> Self {
        ChannelReader { rx, cur: bytes::Bytes::new(), strict: false, ended: false }
    }
    /// The end of the data is an empty chunk; a channel closed before it is
    /// an [`std::io::ErrorKind::UnexpectedEof`] error (the sender gave up).
    pub(crate) fn until_end(rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>) -> Self {
        ChannelReader { strict: true, ..Self::new(rx) }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                None if self.strict => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the data stream stopped before its end",
                    ))
                }
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) if b.is_empty() && self.strict => self.ended = true,
                Some(Ok(b)) => self.cur = b,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

pub(crate) use engine_core::fs::write_atomic;
