//! Container records in redb: every write is committed (fsynced) before it
//! is acknowledged, so a crash never loses or half-writes a record.
//! Concurrent writes share one transaction (group commit): while one commit
//! is on disk the next ones queue up and go out together in the following
//! commit, so N concurrent creates cost a few fsyncs rather than N.

use engine_core::{ContainerInfo, Error, Result, RuntimeBinary};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// What the manager persists per container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    /// What `inspect` shows.
    pub info: ContainerInfo,
    /// The resolved runtime (binary, state root).
    pub runtime: RuntimeBinary,
    /// The shim's state dir.
    pub shim_dir: PathBuf,
    /// The rootfs snapshot key.
    pub rootfs_key: String,
    /// Shims launched so far for this container (each gets its own state dir,
    /// so an exiting shim's cleanup never touches its successor's).
    #[serde(default)]
    pub shim_gen: u32,
    /// Stopped by the user (restart policies leave it alone).
    #[serde(default)]
    pub stopped_by_user: bool,
}

/// A record that could not be read: its id and why.
pub(crate) type Corrupt = (String, String);

/// One queued write.
enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

impl Op {
    fn id(&self) -> &str {
        match self {
            Op::Put(id, _) | Op::Delete(id) => id,
        }
    }
}

struct Job {
    op: Op,
    done: oneshot::Sender<Result<()>>,
}

/// Writes waiting for the next commit, and whether a writer is running.
#[derive(Default)]
struct Queue {
    pending: Vec<Job>,
    writing: bool,
}

/// Held by the committing thread: if it unwinds, the committer's role is
/// handed back and the queued writes fail (their callers get an error)
/// rather than wait for ever.
struct Release(Arc<Mutex<Queue>>);

impl Drop for Release {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut q) = self.0.lock() {
                q.writing = false;
                q.pending.clear();
            }
        }
    }
}

#[derive(Clone)]
pub(crate) struct Store {
    db: Arc<Database>,
    queue: Arc<Mutex<Queue>>,
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("container database {}: {e}", path.display()))
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path).map_err(|e| db_err(path, e))?;
        let tx = db.begin_write().map_err(|e| db_err(path, e))?;
        tx.open_table(CONTAINERS).map_err(|e| db_err(path, e))?;
        tx.commit().map_err(|e| db_err(path, e))?;
        Ok(Store { db: Arc::new(db), queue: Arc::default() })
    }

    /// Every readable record, and the ids of the unreadable ones with why
    /// (each also logged as a warning naming the id).
    pub fn load_all(&self) -> Result<(Vec<Record>, Vec<Corrupt>)> {
        let e = |e: &dyn std::fmt::Display| Error::Other(format!("reading container records: {e}"));
        let tx = self.db.begin_read().map_err(|x| e(&x))?;
        let table = tx.open_table(CONTAINERS).map_err(|x| e(&x))?;
        let (mut out, mut corrupt) = (Vec::new(), Vec::new());
        for row in table.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            match serde_json::from_slice::<Record>(v.value()) {
                Ok(r) if r.info.id == k.value() => out.push(r),
                Ok(r) => {
                    let why = format!("the record under {} names container {}", k.value(), r.info.id);
                    tracing::warn!(id = k.value(), "skipping corrupt container record {}: {why}", k.value());
                    corrupt.push((k.value().to_string(), why));
                }
                Err(err) => {
                    tracing::warn!(id = k.value(), "skipping corrupt container record {}: {err}", k.value());
                    corrupt.push((k.value().to_string(), err.to_string()));
                }
            }
        }
        Ok((out, corrupt))
    }

    /// Apply `ops` in order in one write transaction and commit it.
    fn commit(db: &Database, ops: &[&Op]) -> std::result::Result<(), String> {
        let tx = db.begin_write().map_err(|x| x.to_string())?;
        {
            let mut t = tx.open_table(CONTAINERS).map_err(|x| x.to_string())?;
            for op in ops {
                match op {
                    Op::Put(id, data) => t.insert(id.as_str(), data.as_slice()).map(drop),
                    Op::Delete(id) => t.remove(id.as_str()).map(drop),
                }
                .map_err(|x| x.to_string())?;
            }
        }
        tx.commit().map_err(|x| x.to_string())
    }

    /// Commit a batch; if the shared commit fails, each write is retried in a
    /// transaction of its own so every caller gets its own write's outcome.
    fn commit_batch(db: &Database, jobs: &[Job]) -> Vec<Result<()>> {
        let all: Vec<&Op> = jobs.iter().map(|j| &j.op).collect();
        let shared = if jobs.len() > 1 { Self::commit(db, &all).ok() } else { None };
        jobs.iter()
            .map(|j| match shared {
                Some(()) => Ok(()),
                None => Self::commit(db, &[&j.op]).map_err(|x| {
                    let what = if matches!(j.op, Op::Put(..)) { "writing" } else { "deleting" };
                    Error::Other(format!("{what} record of container {}: {x}", j.op.id()))
                }),
            })
            .collect()
    }

    /// Queue a write and wait until a commit holding it is on disk. The
    /// first writer to find no commit running becomes the committer: it
    /// commits whatever has queued up, batch after batch, until the queue is
    /// empty; the others only wait for their answer.
    async fn write(&self, op: Op) -> Result<()> {
        let (done, answer) = oneshot::channel();
        let lead = {
            let mut q = self.queue.lock().unwrap();
            q.pending.push(Job { op, done });
            !std::mem::replace(&mut q.writing, true)
        };
        if lead {
            let (db, queue) = (self.db.clone(), self.queue.clone());
            tokio::task::spawn_blocking(move || {
                let _release = Release(queue.clone());
                loop {
                    let jobs = std::mem::take(&mut queue.lock().unwrap().pending);
                    let results = Self::commit_batch(&db, &jobs);
                    let more = {
                        let mut q = queue.lock().unwrap();
                        q.writing = !q.pending.is_empty();
                        q.writing
                    };
                    if !more {
                        // The database handle goes before the last answers, so a
                        // caller that drops the store next finds the file free.
                        drop(db);
                        for (j, r) in jobs.into_iter().zip(results) {
                            let _ = j.done.send(r);
                        }
                        return;
                    }
                    for (j, r) in jobs.into_iter().zip(results) {
                        let _ = j.done.send(r);
                    }
                }
            });
        }
        answer.await.map_err(|_| Error::Other("record writer task ended without an answer".into()))?
    }

    /// Persist a record (durably) before returning.
    pub async fn put(&self, rec: &Record) -> Result<()> {
        let data = serde_json::to_vec(rec)
            .map_err(|x| Error::Other(format!("writing record of container {}: {x}", rec.info.id)))?;
        self.write(Op::Put(rec.info.id.clone(), data)).await
    }

    /// Delete a record (durably).
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.write(Op::Delete(id.to_string())).await
    }
}
