//! Clustered databases: the `_Server` database's `Database` table tells, for each database a
//! server hosts, its model (`standalone`, `clustered`, `relay`), whether the server is connected
//! to the cluster, whether it is the leader, and the cluster (`cid`) and server (`sid`) ids.
//!
//! The connection task monitors that row on every connection when the client is configured with
//! a database name; a member that is not connected to its cluster (or, with `leader_only`, not
//! the leader) is skipped, and the client moves on to the next remote when that changes.

use crate::datum::{Row, Uuid};
use crate::monitor::{RowUpdate, TableUpdates};

/// One row of `_Server.Database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDatabase {
    pub name: String,
    /// `standalone`, `clustered`, `relay` (or `backup` on older servers).
    pub model: String,
    pub connected: bool,
    pub leader: bool,
    pub cid: Option<Uuid>,
    pub sid: Option<Uuid>,
    pub index: Option<i64>,
}

impl ServerDatabase {
    pub fn from_row(row: &Row) -> ServerDatabase {
        ServerDatabase {
            name: row.str("name").to_string(),
            model: row.str("model").to_string(),
            connected: row.bool("connected").unwrap_or(false),
            leader: row.bool("leader").unwrap_or(false),
            cid: row.uuid("cid"),
            sid: row.uuid("sid"),
            index: row.i64("index"),
        }
    }

    /// Whether a client may use this server for the database; `Err` gives the reason not to.
    pub fn acceptable(&self, leader_only: bool) -> Result<(), String> {
        if self.model != "clustered" {
            return Ok(());
        }
        if !self.connected {
            return Err(format!("server is not connected to the cluster of database {}", self.name));
        }
        if leader_only && !self.leader {
            return Err(format!("server is not the leader of database {}", self.name));
        }
        Ok(())
    }
}

/// Finds the row for `db` in a `_Server` monitor update (RFC 7047 format, full rows).
pub(crate) fn find_database(updates: &TableUpdates, db: &str) -> Option<Option<ServerDatabase>> {
    let mut found = None;
    for t in updates.tables.iter().filter(|t| t.table == "Database") {
        for (_, u) in &t.rows {
            match u {
                RowUpdate::Insert(r) | RowUpdate::Replace(r) if r.str("name") == db => found = Some(Some(ServerDatabase::from_row(r))),
                _ => {}
            }
        }
    }
    found
}

pub(crate) const SERVER_MONITOR_ID: &str = "_server";

pub(crate) fn server_monitor_params() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([
        "_Server",
        SERVER_MONITOR_ID,
        {"Database": {"columns": ["name", "model", "connected", "leader", "cid", "sid", "index"]}}
    ]))
    .unwrap_or_default()
}
