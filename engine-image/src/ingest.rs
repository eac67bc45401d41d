//! Layers read once: every byte of a layer goes into a new blob of the
//! content store while the same bytes are unpacked into a temporary snapshot,
//! so a pull, an import or a load reads its input once and writes it twice
//! (blob and snapshot), with no staging copy.

use crate::blobs::{Blobs, ChannelReader, TeeReader};
use crate::unpack::{detect, unpack_layer, Compression, UnpackOptions, UnpackStats};
use engine_core::{ByteStream, Error, IoContext, Result};
use futures::StreamExt;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Whether [`ingest_layer`] unpacks what it stores.
pub(crate) enum Unpack<'a> {
    /// Only store the blob.
    No,
    /// Unpack too; a failure to unpack fails the whole ingest.
    Must(&'a UnpackOptions),
    /// Unpack if it is a layer (a member of an archive that may be one); a
    /// failure to unpack only drops the snapshot, the blob is still stored.
    Try(&'a UnpackOptions),
}

/// A snapshot unpacked but not yet in place: `dir/fs` holds the files.
/// Dropped without [`TmpSnapshot::finish`], the directory is removed.
pub(crate) struct TmpSnapshot {
    dir: Option<PathBuf>,
    /// What the unpack found (the diff id, the unpacked size).
    pub(crate) stats: UnpackStats,
}

impl TmpSnapshot {
    /// Move it into place as `snap` (fsynced; someone else may have won the race).
    pub(crate) fn finish(mut self, snap: &Path) -> Result<()> {
        let dir = self.dir.take().unwrap_or_default();
        let r = crate::store::finish_snapshot(&dir, snap, self.stats.size);
        if r.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        r
    }
}

impl Drop for TmpSnapshot {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// What [`ingest_layer`] stored.
pub(crate) struct Ingested {
    /// The blob's digest (committed and fsynced).
    pub(crate) digest: String,
    /// Its size.
    pub(crate) size: u64,
    /// Its compression, from its first bytes.
    pub(crate) compression: Compression,
    /// The unpacked snapshot, if asked for and the blob was a layer.
    pub(crate) snapshot: Option<TmpSnapshot>,
}

/// Read `r` to its end once: store it as a blob (checked against `expected`)
/// and, as [`Unpack`] says, unpack it into a new directory under `snapshots`
/// on the way. On any error nothing is left: the blob's temporary file and the
/// unpacked directory are removed.
pub(crate) fn ingest_layer(
    blobs: &Blobs,
    snapshots: &Path,
    r: impl Read,
    expected: Option<&str>,
    unpack: Unpack<'_>,
) -> Result<Ingested> {
    let w = blobs.writer()?;
    let mut tee = BufReader::with_capacity(256 * 1024, TeeReader { r, w });
    let compression = detect(&mut tee).context(|| "read a layer".to_string())?;
    let (opts, must) = match unpack {
        Unpack::No => (None, false),
        Unpack::Must(o) => (Some(o), true),
        Unpack::Try(o) => (Some(o), false),
    };
    let mut snapshot = None;
    if let Some(opts) = opts {
        let dir = snapshots.join(format!("tmp-{}", &engine_core::random_hex64()[..16]));
        let fs = dir.join("fs");
        std::fs::create_dir_all(&fs).context(|| format!("create {}", fs.display()))?;
        let mut tmp = TmpSnapshot { dir: Some(dir), stats: UnpackStats::default() };
        match unpack_layer(&mut tee, &fs, opts) {
            Ok(stats) => {
                tmp.stats = stats;
                snapshot = Some(tmp);
            }
            Err(e) if must => return Err(e),
            Err(e) => tracing::debug!("archive member is not an unpackable layer: {e}"),
        }
    }
    // The rest (a compressed stream's trailer, padding after the tar's end).
    std::io::copy(&mut tee, &mut std::io::sink()).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
            Error::invalid("layer", format!("truncated or unreadable: {e}"))
        }
        _ => Error::io("read a layer", e),
    })?;
    let TeeReader { r, w } = tee.into_inner();
    drop(r);
    let (digest, size) = w.commit(expected)?;
    Ok(Ingested { digest, size, compression, snapshot })
}

/// How long an upload may send nothing before it is given up.
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(120);

/// Feed `body` to `work`, which runs on a blocking thread and reads it as a
/// [`Read`]er that fails unless the stream ended cleanly (a body cut off or
/// dropped half-way is an error, never a short archive; so is a body that
/// sends nothing for two minutes). A few chunks are buffered at a time, never
/// the whole body.
pub(crate) async fn with_stream_reader<T: Send + 'static>(
    mut body: ByteStream,
    work: impl FnOnce(ChannelReader) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(16);
    let worker = tokio::task::spawn_blocking(move || work(ChannelReader::until_end(rx)));
    let mut clean = true;
    loop {
        let item = match tokio::time::timeout(UPLOAD_IDLE, body.next()).await {
            Ok(Some(item)) => item,
            Ok(None) => break,
            // A stalled sender would hold off garbage collection for good.
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no data for {} s", UPLOAD_IDLE.as_secs()),
            )),
        };
        let failed = item.is_err();
        if matches!(&item, Ok(b) if b.is_empty()) {
            continue;
        }
        if tx.send(item).await.is_err() || failed {
            // The worker stopped (its error is reported) or the body broke off.
            clean = false;
            break;
        }
    }
    if clean {
        // The end marker: only now does the reader see the end of the stream.
        let _ = tx.send(Ok(bytes::Bytes::new())).await;
    }
    drop(tx);
    worker.await.map_err(|e| Error::Other(format!("import worker: {e}")))?
}
