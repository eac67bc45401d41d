//! Container records in redb: one committed (fsynced) transaction per write,
//! so a crash never loses or half-writes a record.

use engine_core::{ContainerInfo, Error, Result, RuntimeBinary};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

#[derive(Clone)]
pub(crate) struct Store {
    db: Arc<Database>,
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
        Ok(Store { db: Arc::new(db) })
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

    fn put_sync(db: &Database, rec: &Record) -> Result<()> {
        let id = rec.info.id.clone();
        let e = |x: &dyn std::fmt::Display| Error::Other(format!("writing record of container {id}: {x}"));
        let data = serde_json::to_vec(rec).map_err(|x| e(&x))?;
        let tx = db.begin_write().map_err(|x| e(&x))?;
        {
            let mut t = tx.open_table(CONTAINERS).map_err(|x| e(&x))?;
            t.insert(rec.info.id.as_str(), data.as_slice()).map_err(|x| e(&x))?;
        }
        tx.commit().map_err(|x| e(&x))
    }

    /// Persist a record (durably) before returning.
    pub async fn put(&self, rec: &Record) -> Result<()> {
        let db = self.db.clone();
        let rec = rec.clone();
        tokio::task::spawn_blocking(move || Self::put_sync(&db, &rec))
            .await
            .map_err(|e| Error::Other(format!("record writer task: {e}")))?
    }

    /// Delete a record (durably).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let db = self.db.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let e = |x: &dyn std::fmt::Display| Error::Other(format!("deleting record of container {id}: {x}"));
            let tx = db.begin_write().map_err(|x| e(&x))?;
            {
                let mut t = tx.open_table(CONTAINERS).map_err(|x| e(&x))?;
                t.remove(id.as_str()).map_err(|x| e(&x))?;
            }
            tx.commit().map_err(|x| e(&x))
        })
        .await
        .map_err(|e| Error::Other(format!("record writer task: {e}")))?
    }
}
