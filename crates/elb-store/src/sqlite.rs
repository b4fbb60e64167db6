//! The embedded default backend: one SQLite database in the data dir. Each commit is one
//! IMMEDIATE transaction with synchronous=FULL, so an acknowledged change survives kill -9
//! and power loss.

use std::path::Path;
use std::sync::Mutex;

use elb_model::State;
// SQLite integers are i64; revisions stay far below i64::MAX.
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::backend::{Backend, Revision, StoreError};

pub struct SqliteBackend {
    conn: Mutex<Connection>,
}

impl SqliteBackend {
    /// Opens (creating if needed) `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS states (
                 scope    TEXT PRIMARY KEY,
                 revision INTEGER NOT NULL,
                 state    TEXT NOT NULL
             );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }
}

#[async_trait::async_trait]
impl Backend for SqliteBackend {
    async fn load(&self, scope: &str) -> Result<Option<(Revision, State)>, StoreError> {
        let conn = self.conn.lock().expect("poisoned");
        let row: Option<(i64, String)> = conn
            .query_row(
                "SELECT revision, state FROM states WHERE scope = ?1",
                params![scope],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(rev, json)| Ok((rev as Revision, serde_json::from_str(&json)?)))
            .transpose()
    }

    async fn commit(
        &self,
        scope: &str,
        expected: Revision,
        _base: &State,
        state: &State,
    ) -> Result<Revision, StoreError> {
        let json = serde_json::to_string(state)?;
        let mut conn = self.conn.lock().expect("poisoned");
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = tx
            .query_row(
                "SELECT revision FROM states WHERE scope = ?1",
                params![scope],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0) as Revision;
        if found != expected {
            return Err(StoreError::Conflict { expected, found });
        }
        tx.execute(
            "INSERT INTO states (scope, revision, state) VALUES (?1, ?2, ?3)
             ON CONFLICT(scope) DO UPDATE SET revision = excluded.revision, state = excluded.state",
            params![scope, (found + 1) as i64, json],
        )?;
        tx.commit()?;
        Ok(found + 1)
    }
}
