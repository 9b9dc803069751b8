//! A client-side replica of monitored tables.
//!
//! A background task applies monitor events to persistent B-tree maps (`imbl::OrdMap`), so every published
//! [`Snapshot`] is consistent (one whole update applied or none of it) and cloning one is O(1).
//! Indexes by a column value (e.g. `name`) or by a map key (e.g. `external_ids:pod`) are kept up
//! to date incrementally. Controllers wait for changes with [`Replica::subscribe`] (a watch
//! channel) or [`Replica::wait_until`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::client::Client;
use crate::datum::{Atom, Datum, Row, Uuid};
use crate::error::{Error, Result};
use crate::monitor::{Monitor, MonitorEvent, MonitorRequest, MonitorTable, RowUpdate, TableUpdates};
use crate::schema::{DatabaseSchema, TableSchema};

/// What an index is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexSpec {
    /// Each element of a (set or scalar) column.
    Column(String),
    /// The value under one key of a map column (e.g. `external_ids`).
    MapKey { column: String, key: String },
}

impl IndexSpec {
    fn keys(&self, row: &Row) -> Vec<Atom> {
        match self {
            IndexSpec::Column(c) => row.get(c).and_then(|d| d.as_set()).map(|s| s.to_vec()).unwrap_or_default(),
            IndexSpec::MapKey { column, key } => {
                row.get(column).and_then(|d| d.get(&Atom::String(key.clone()))).cloned().into_iter().collect()
            }
        }
    }
}

/// Configuration of a replica: the monitor request plus indexes.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub request: MonitorRequest,
    pub indexes: Vec<(String, IndexSpec)>,
}

impl ReplicaConfig {
    /// Replicates nothing yet; add tables with [`ReplicaConfig::table`].
    pub fn new(db: &str) -> ReplicaConfig {
        ReplicaConfig { request: MonitorRequest::new(db), indexes: vec![] }
    }
    /// Adds a table (all columns, all rows unless the [`MonitorTable`] says otherwise).
    pub fn table(mut self, t: MonitorTable) -> ReplicaConfig {
        self.request.tables.push(t);
        self
    }
    /// Indexes `table` by the value(s) of `column`.
    pub fn index(mut self, table: &str, column: &str) -> ReplicaConfig {
        self.indexes.push((table.to_string(), IndexSpec::Column(column.to_string())));
        self
    }
    /// Indexes `table` by the value under `key` in map column `column`.
    pub fn index_map_key(mut self, table: &str, column: &str, key: &str) -> ReplicaConfig {
        self.indexes.push((table.to_string(), IndexSpec::MapKey { column: column.to_string(), key: key.to_string() }));
        self
    }
}

/// (key, row) pairs: one B-tree descent per insert or removal; lookups are range scans.
type Index = imbl::OrdSet<(Atom, Uuid)>;

/// The rows of one table.
#[derive(Clone, Default)]
pub struct TableData {
    rows: imbl::OrdMap<Uuid, Arc<Row>>,
    indexes: HashMap<IndexSpec, Index>,
}

impl TableData {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn get(&self, uuid: &Uuid) -> Option<&Arc<Row>> {
        self.rows.get(uuid)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &Arc<Row>)> {
        self.rows.iter()
    }

    fn index_add(&mut self, uuid: Uuid, row: &Row) {
        for (spec, idx) in self.indexes.iter_mut() {
            for k in spec.keys(row) {
                idx.insert((k, uuid));
            }
        }
    }
    fn index_remove(&mut self, uuid: Uuid, row: &Row) {
        for (spec, idx) in self.indexes.iter_mut() {
            for k in spec.keys(row) {
                idx.remove(&(k, uuid));
            }
        }
    }
    fn upsert(&mut self, uuid: Uuid, row: Row) {
        let row = Arc::new(row);
        if let Some(old) = self.rows.insert(uuid, row.clone()) {
            self.index_remove(uuid, &old);
        }
        self.index_add(uuid, &row);
    }
    fn remove(&mut self, uuid: Uuid) {
        if let Some(old) = self.rows.remove(&uuid) {
            self.index_remove(uuid, &old);
        }
    }
    fn lookup(&self, spec: &IndexSpec, key: &Atom) -> Vec<(Uuid, Arc<Row>)> {
        match self.indexes.get(spec) {
            Some(idx) => {
                let lo = (key.clone(), Uuid::nil());
                let hi = (key.clone(), Uuid::from_u128(u128::MAX));
                idx.range(lo..=hi).filter_map(|(_, u)| self.rows.get(u).map(|r| (*u, r.clone()))).collect()
            }
            None => self.rows.iter().filter(|(_, r)| spec.keys(r).contains(key)).map(|(u, r)| (*u, r.clone())).collect(),
        }
    }
}

#[derive(Clone, Default)]
struct SnapInner {
    version: u64,
    connected: bool,
    error: Option<String>,
    tables: HashMap<String, TableData>,
}

/// A consistent, immutable view of the replicated tables. Cheap to clone.
#[derive(Clone, Default)]
pub struct Snapshot {
    inner: Arc<SnapInner>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Snapshot");
        d.field("version", &self.inner.version).field("connected", &self.inner.connected);
        for (t, td) in &self.inner.tables {
            d.field(t, &td.len());
        }
        d.finish()
    }
}

impl Snapshot {
    /// Increases with every applied update.
    pub fn version(&self) -> u64 {
        self.inner.version
    }
    /// Whether the monitor is live (false between a lost connection and the resync).
    pub fn connected(&self) -> bool {
        self.inner.connected
    }
    /// The last error of the replica task (decoding failure, monitor canceled).
    pub fn error(&self) -> Option<&str> {
        self.inner.error.as_deref()
    }
    pub fn table(&self, table: &str) -> Option<&TableData> {
        self.inner.tables.get(table)
    }
    pub fn get(&self, table: &str, uuid: &Uuid) -> Option<Arc<Row>> {
        self.table(table)?.get(uuid).cloned()
    }
    pub fn len(&self, table: &str) -> usize {
        self.table(table).map_or(0, TableData::len)
    }
    pub fn rows(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Arc<Row>)> {
        self.table(table).into_iter().flat_map(|t| t.iter())
    }
    /// Rows whose `column` contains `value` (via an index if one was configured).
    pub fn find(&self, table: &str, column: &str, value: impl Into<Atom>) -> Vec<(Uuid, Arc<Row>)> {
        self.table(table).map(|t| t.lookup(&IndexSpec::Column(column.to_string()), &value.into())).unwrap_or_default()
    }
    /// The first row whose `column` contains `value`.
    pub fn find_one(&self, table: &str, column: &str, value: impl Into<Atom>) -> Option<(Uuid, Arc<Row>)> {
        self.find(table, column, value).into_iter().next()
    }
    /// Rows whose map column `column` has `key` = `value` (e.g. `external_ids`).
    pub fn find_map(&self, table: &str, column: &str, key: &str, value: impl Into<Atom>) -> Vec<(Uuid, Arc<Row>)> {
        let spec = IndexSpec::MapKey { column: column.to_string(), key: key.to_string() };
        self.table(table).map(|t| t.lookup(&spec, &value.into())).unwrap_or_default()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A replica of some tables of one database, kept current by a monitor.
#[derive(Clone)]
pub struct Replica {
    rx: watch::Receiver<Snapshot>,
    /// For error messages naming the remote.
    client: Client,
    schema: Arc<DatabaseSchema>,
    _task: Arc<AbortOnDrop>,
}

impl Replica {
    /// Starts the monitor and returns once the initial contents are loaded.
    pub async fn start(client: &Client, config: ReplicaConfig) -> Result<Replica> {
        let mut monitor = client.monitor(config.request.clone()).await?;
        let schema = monitor.schema().clone();
        let mut state = SnapInner::default();
        for t in &config.request.tables {
            state.tables.insert(t.table.clone(), TableData::default());
        }
        for (t, spec) in &config.indexes {
            let td = state.tables.get_mut(t).ok_or_else(|| Error::Schema(format!("index on table {t}, which is not replicated")))?;
            td.indexes.insert(spec.clone(), Index::default());
        }
        // The first event is the initial contents.
        match monitor.next().await {
            Some(Ok(ev)) => apply(&mut state, &schema, ev),
            Some(Err(e)) => return Err(e),
            None => return Err(client.closed_error()),
        }
        state.connected = true;
        let (tx, rx) = watch::channel(Snapshot { inner: Arc::new(state.clone()) });
        let task = tokio::spawn(run(monitor, state, tx));
        Ok(Replica { rx, client: client.clone(), schema, _task: Arc::new(AbortOnDrop(task)) })
    }

    pub fn schema(&self) -> &Arc<DatabaseSchema> {
        &self.schema
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.rx.borrow().clone()
    }

    /// A watch receiver that is notified on every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.rx.clone()
    }

    /// Waits until `pred` holds for a snapshot (checked now and after every change).
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&Snapshot) -> bool) -> Result<Snapshot> {
        let mut rx = self.rx.clone();
        let r = match tokio::time::timeout(timeout, rx.wait_for(|s| pred(s))).await {
            Ok(Ok(s)) => Ok(s.clone()),
            Ok(Err(_)) => Err(self.client.closed_error()),
            Err(_) => Err(Error::Timeout(format!("replica condition not met within {timeout:?} (remote {})", self.client.remote()))),
        };
        r
    }
}

async fn run(mut monitor: Monitor, mut state: SnapInner, tx: watch::Sender<Snapshot>) {
    let schema = monitor.schema().clone();
    loop {
        let ev = match monitor.next().await {
            None => {
                state.connected = false;
                state.error.get_or_insert_with(|| "monitor closed".into());
                state.version += 1;
                tx.send_replace(Snapshot { inner: Arc::new(state.clone()) });
                return;
            }
            Some(Err(e)) => {
                warn!("replica: {e}");
                state.error = Some(e.to_string());
                state.version += 1;
                tx.send_replace(Snapshot { inner: Arc::new(state.clone()) });
                continue;
            }
            Some(Ok(ev)) => ev,
        };
        apply(&mut state, &schema, ev);
        state.version += 1;
        tx.send_replace(Snapshot { inner: Arc::new(state.clone()) });
    }
}

fn apply(state: &mut SnapInner, schema: &DatabaseSchema, ev: MonitorEvent) {
    match ev {
        MonitorEvent::Disconnected => state.connected = false,
        MonitorEvent::Reset(u) => {
            for td in state.tables.values_mut() {
                td.rows = imbl::OrdMap::new();
                for idx in td.indexes.values_mut() {
                    *idx = Index::default();
                }
            }
            apply_updates(state, schema, u);
            state.connected = true;
        }
        MonitorEvent::Update(u) => {
            apply_updates(state, schema, u);
            state.connected = true;
        }
    }
}

fn apply_updates(state: &mut SnapInner, schema: &DatabaseSchema, u: TableUpdates) {
    for tu in u.tables {
        let Some(td) = state.tables.get_mut(&tu.table) else {
            debug!(table = %tu.table, "update for a table that is not replicated");
            continue;
        };
        let ts = schema.tables.get(&tu.table);
        for (uuid, ru) in tu.rows {
            match ru {
                RowUpdate::Insert(r) | RowUpdate::Replace(r) => td.upsert(uuid, r),
                RowUpdate::Delete => td.remove(uuid),
                RowUpdate::Modify(diff) => {
                    let mut row = td.rows.get(&uuid).map(|r| (**r).clone()).unwrap_or_default();
                    apply_row_diff(&mut row, &diff, ts);
                    td.upsert(uuid, row);
                }
            }
        }
    }
}

fn apply_row_diff(row: &mut Row, diff: &Row, ts: Option<&TableSchema>) {
    for (col, d) in diff.iter() {
        let ty = ts.and_then(|t| t.column_type(col));
        // ovsdb-server sends the new value, not a diff, for every column that holds at most one
        // element (optional columns too); only sets and maps of more than one get diffs.
        let scalar = ty.is_none_or(|t| t.max == Some(1));
        if scalar {
            row.insert(col, d.clone());
            continue;
        }
        let is_map = ty.is_some_and(|t| t.is_map());
        match row.get_mut(col) {
            Some(cur) => cur.apply_diff(d, false),
            None => {
                let mut cur = if is_map { Datum::empty_map() } else { Datum::empty_set() };
                cur.apply_diff(d, false);
                row.insert(col, cur);
            }
        }
        if row.get(col).is_some_and(Datum::is_empty) {
            row.remove(col);
        }
    }
}
