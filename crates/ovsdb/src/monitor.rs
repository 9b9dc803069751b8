//! Monitors (`monitor`, `monitor_cond`, `monitor_cond_since`) and their updates, decoded straight
//! from the wire into [`Row`]s with the help of the schema (column names are shared with the
//! schema, integers in real columns become reals, empty sets in map columns become maps).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::datum::{intern, Datum, Row, Uuid};
use crate::error::{Error, Result};
use crate::ops::Condition;
use crate::schema::{DatabaseSchema, TableSchema};

/// The monitor protocol flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMethod {
    /// RFC 7047 `monitor` (`update` notifications, full new rows).
    Monitor,
    /// `monitor_cond` (`update2`, diffs, conditions).
    Cond,
    /// `monitor_cond_since` (`update3`, resumable with the last transaction id). Falls back to
    /// `monitor_cond` if the server does not know it.
    CondSince,
}

impl MonitorMethod {
    /// The JSON-RPC method name.
    pub fn name(self) -> &'static str {
        match self {
            MonitorMethod::Monitor => "monitor",
            MonitorMethod::Cond => "monitor_cond",
            MonitorMethod::CondSince => "monitor_cond_since",
        }
    }
}

/// What to monitor in one table.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorTable {
    pub table: String,
    /// `None`: all columns of the schema (filled in from it before the request is sent).
    pub columns: Option<Vec<String>>,
    /// `None`: all rows. Only for `monitor_cond*`.
    pub conditions: Option<Vec<Condition>>,
    /// Which kinds of change to report: initial, insert, delete, modify.
    pub select: [bool; 4],
}

impl MonitorTable {
    pub fn new(table: &str) -> MonitorTable {
        MonitorTable { table: table.to_string(), columns: None, conditions: None, select: [true; 4] }
    }
    pub fn columns<S: AsRef<str>>(mut self, cols: impl IntoIterator<Item = S>) -> MonitorTable {
        self.columns = Some(cols.into_iter().map(|c| c.as_ref().to_string()).collect());
        self
    }
    /// Adds a condition; rows matching any condition are monitored.
    pub fn condition(mut self, c: Condition) -> MonitorTable {
        self.conditions.get_or_insert_with(Vec::new).push(c);
        self
    }
    pub fn select(mut self, initial: bool, insert: bool, delete: bool, modify: bool) -> MonitorTable {
        self.select = [initial, insert, delete, modify];
        self
    }
    fn to_json(&self, method: MonitorMethod) -> Value {
        let mut o = serde_json::Map::new();
        if let Some(c) = &self.columns {
            o.insert("columns".into(), json!(c));
        }
        if method != MonitorMethod::Monitor {
            if let Some(c) = &self.conditions {
                o.insert("where".into(), serde_json::to_value(c).unwrap_or(Value::Null));
            }
        }
        if self.select != [true; 4] {
            let [a, b, c, d] = self.select;
            o.insert("select".into(), json!({"initial": a, "insert": b, "delete": c, "modify": d}));
        }
        Value::Object(o)
    }
}

/// A monitor request for one database.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorRequest {
    pub db: String,
    pub tables: Vec<MonitorTable>,
    pub method: MonitorMethod,
}

impl MonitorRequest {
    /// A `monitor_cond_since` request (the default).
    pub fn new(db: &str) -> MonitorRequest {
        MonitorRequest { db: db.to_string(), tables: vec![], method: MonitorMethod::CondSince }
    }
    pub fn table(mut self, t: MonitorTable) -> MonitorRequest {
        self.tables.push(t);
        self
    }
    pub fn method(mut self, m: MonitorMethod) -> MonitorRequest {
        self.method = m;
        self
    }
    pub(crate) fn requests_json(&self, method: MonitorMethod) -> Value {
        let mut o = serde_json::Map::new();
        for t in &self.tables {
            o.insert(t.table.clone(), t.to_json(method));
        }
        Value::Object(o)
    }
    pub(crate) fn check(&mut self, schema: &DatabaseSchema) -> Result<()> {
        if self.method == MonitorMethod::Monitor && self.tables.iter().any(|t| t.conditions.is_some()) {
            return Err(Error::Schema("monitor conditions need MonitorMethod::Cond or CondSince, not Monitor".into()));
        }
        for t in &mut self.tables {
            let ts = schema.table(&t.table)?;
            match &t.columns {
                Some(c) => schema.check_columns(&t.table, c)?,
                // "All columns" is sent as the schema's column list: a request without one makes
                // ovsdb-server add `_version` to every row (a third more bytes on a 100k-row sync).
                None => t.columns = Some(ts.columns.keys().filter(|c| !c.starts_with('_')).map(|c| c.to_string()).collect()),
            }
            if let Some(conds) = &mut t.conditions {
                for c in conds {
                    if let Condition::Compare { column, function, value } = c {
                        schema.check_condition(&ts.name, column, function.as_str(), value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowUpdate {
    /// A new row (or an existing one in an initial snapshot), with its non-default columns.
    Insert(Row),
    /// An update2/3 diff: for each changed column, the diff to apply (see [`Datum::apply_diff`]).
    Modify(Row),
    /// An RFC 7047 `update`: the complete new contents of the monitored columns.
    Replace(Row),
    Delete,
}

/// The changes to one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableUpdate {
    pub table: String,
    pub rows: Vec<(Uuid, RowUpdate)>,
}

/// Changes to several tables, as one notification or reply carries them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableUpdates {
    pub tables: Vec<TableUpdate>,
}

impl TableUpdates {
    /// Number of row updates.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A monitor event.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// Replace everything known about the monitored tables with these rows (initial contents,
    /// or a full resynchronisation after a reconnect that could not resume).
    Reset(TableUpdates),
    /// Apply these changes (a notification, or the missed changes after a resumed reconnect).
    Update(TableUpdates),
    /// The connection was lost; the monitor will be re-established after reconnecting.
    Disconnected,
}

/// Raw events passed from the connection task to the monitor handle.
#[derive(Debug)]
pub(crate) enum RawEvent {
    Reset { body: Bytes, v1: bool },
    Update { body: Bytes, v1: bool },
    Disconnected,
    Canceled,
}

// ---------- decoding with the schema ----------

struct RowSeed<'a>(Option<&'a TableSchema>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Row, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Row, A::Error> {
        let mut cols: Vec<(Arc<str>, Datum)> = Vec::new();
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let mut v: Datum = map.next_value()?;
            let name = match self.0.and_then(|t| t.columns.get_key_value(&*k)) {
                Some((n, cs)) => {
                    cs.ty.normalize(&mut v);
                    n.clone()
                }
                None => intern(&k),
            };
            cols.push((name, v));
        }
        cols.sort_by(|a, b| a.0.cmp(&b.0));
        cols.dedup_by(|a, b| a.0 == b.0);
        cols.shrink_to_fit();
        Ok(Row::from_sorted_unchecked(cols))
    }
}

struct RowUpdateSeed<'a> {
    table: Option<&'a TableSchema>,
    v1: bool,
}

impl<'de> DeserializeSeed<'de> for RowUpdateSeed<'_> {
    type Value = RowUpdate;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<RowUpdate, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowUpdateSeed<'_> {
    type Value = RowUpdate;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row update")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RowUpdate, A::Error> {
        let mut old = false;
        let mut new: Option<Row> = None;
        let mut out: Option<RowUpdate> = None;
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match (&*k, self.v1) {
                ("old", true) => {
                    map.next_value::<de::IgnoredAny>()?;
                    old = true;
                }
                ("new", true) => new = Some(map.next_value_seed(RowSeed(self.table))?),
                ("initial" | "insert", false) => out = Some(RowUpdate::Insert(map.next_value_seed(RowSeed(self.table))?)),
                ("modify", false) => out = Some(RowUpdate::Modify(map.next_value_seed(RowSeed(self.table))?)),
                ("delete", false) => {
                    map.next_value::<de::IgnoredAny>()?;
                    out = Some(RowUpdate::Delete);
                }
                (other, _) => return Err(de::Error::custom(format!("unexpected row update member {other:?}"))),
            }
        }
        if self.v1 {
            return Ok(match (old, new) {
                (_, None) => RowUpdate::Delete,
                (false, Some(r)) => RowUpdate::Insert(r),
                (true, Some(r)) => RowUpdate::Replace(r),
            });
        }
        out.ok_or_else(|| de::Error::custom("empty row update"))
    }
}

struct RowsSeed<'a> {
    table: Option<&'a TableSchema>,
    v1: bool,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Vec<(Uuid, RowUpdate)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Vec<(Uuid, RowUpdate)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table update")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let u = Uuid::parse_str(&k).map_err(|e| de::Error::custom(format!("bad row uuid {k:?}: {e}")))?;
            v.push((u, map.next_value_seed(RowUpdateSeed { table: self.table, v1: self.v1 })?));
        }
        Ok(v)
    }
}

struct UpdatesSeed<'a> {
    schema: Option<&'a DatabaseSchema>,
    v1: bool,
}

impl<'de> DeserializeSeed<'de> for UpdatesSeed<'_> {
    type Value = TableUpdates;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<TableUpdates, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UpdatesSeed<'_> {
    type Value = TableUpdates;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("table updates")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<TableUpdates, A::Error> {
        let mut tables = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let ts = self.schema.and_then(|s| s.tables.get(&k));
            let rows = map.next_value_seed(RowsSeed { table: ts, v1: self.v1 })?;
            tables.push(TableUpdate { table: k, rows });
        }
        Ok(TableUpdates { tables })
    }
}

/// Decodes a `<table-updates>` (v1) or `<table-updates2>` object.
pub fn decode_updates(body: &[u8], schema: Option<&DatabaseSchema>, v1: bool) -> Result<TableUpdates> {
    if body == b"null" {
        return Ok(TableUpdates::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let u = UpdatesSeed { schema, v1 }.deserialize(&mut de).map_err(|e| Error::Protocol(format!("bad table updates: {e}")))?;
    de.end().map_err(|e| Error::Protocol(format!("trailing data after table updates: {e}")))?;
    Ok(u)
}

/// A live monitor. Events arrive in order; after a reconnect the monitor is re-established
/// automatically and either resumes ([`MonitorEvent::Update`] with the missed changes) or starts
/// over ([`MonitorEvent::Reset`]). Dropping it cancels the monitor.
pub struct Monitor {
    pub(crate) client: crate::client::Client,
    pub(crate) key: u64,
    pub(crate) rx: mpsc::UnboundedReceiver<RawEvent>,
    pub(crate) schema: Arc<DatabaseSchema>,
    pub(crate) canceled: bool,
}

impl Monitor {
    /// The next event; `None` once the monitor was canceled (by the server or by the client) or
    /// the client was closed.
    pub async fn next(&mut self) -> Option<Result<MonitorEvent>> {
        let ev = self.rx.recv().await?;
        Some(match ev {
            RawEvent::Reset { body, v1 } => decode_updates(&body, Some(&self.schema), v1).map(MonitorEvent::Reset),
            RawEvent::Update { body, v1 } => decode_updates(&body, Some(&self.schema), v1).map(MonitorEvent::Update),
            RawEvent::Disconnected => Ok(MonitorEvent::Disconnected),
            RawEvent::Canceled => {
                self.canceled = true;
                self.rx.close();
                Err(Error::MonitorCanceled(self.key.to_string()))
            }
        })
    }

    /// The schema used to decode this monitor's rows.
    pub fn schema(&self) -> &Arc<DatabaseSchema> {
        &self.schema
    }

    /// Replaces the conditions of the given tables (`monitor_cond_change`). Rows that start
    /// matching arrive as inserts, rows that stop matching as deletes.
    pub async fn change_conditions(&self, conditions: BTreeMap<String, Vec<Condition>>) -> Result<()> {
        let mut conditions = conditions;
        for (t, conds) in conditions.iter_mut() {
            for c in conds.iter_mut() {
                if let Condition::Compare { column, function, value } = c {
                    self.schema.check_condition(t, column, function.as_str(), value)?;
                }
            }
        }
        self.client.monitor_cond_change(self.key, conditions).await
    }

    /// Cancels the monitor (`monitor_cancel`).
    pub async fn cancel(mut self) -> Result<()> {
        self.canceled = true;
        self.client.monitor_cancel(self.key).await
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if !self.canceled {
            self.client.monitor_cancel_nowait(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn decode() {
        let s = DatabaseSchema::from_file("/usr/share/ovn/ovn-nb.ovsschema").unwrap();
        let body = br#"{"Logical_Switch":{"36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c":{"initial":{"name":"a","external_ids":["map",[["k","v"]]],"other_config":["set",[]]}},
        "46bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c":{"delete":null}}, "Meter_Band":{"56bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c":{"modify":{"rate":3}}}}"#;
        let u = decode_updates(body, Some(&s), false).unwrap();
        assert_eq!(u.len(), 3);
        let RowUpdate::Insert(r) = &u.tables[0].rows[0].1 else { panic!() };
        assert_eq!(r.str("name"), "a");
        assert_eq!(r.map_str("external_ids", "k"), Some("v"));
        assert!(r.get("other_config").unwrap().is_map());
        assert_eq!(u.tables[0].rows[1].1, RowUpdate::Delete);
        let v1 = br#"{"T":{"36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c":{"old":{"a":1},"new":{"a":2}}}}"#;
        let u = decode_updates(v1, None, true).unwrap();
        assert!(matches!(u.tables[0].rows[0].1, RowUpdate::Replace(_)));
        assert!(decode_updates(b"{\"T\":{\"zz\":{}}}", None, false).is_err());
    }
}
