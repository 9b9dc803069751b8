//! Transaction operations (RFC 7047 section 5.2), conditions, mutations and results.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::datum::{Datum, Row, Uuid};
use crate::error::{Error, Result, TxnError};
use crate::schema::DatabaseSchema;

/// A condition function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Lt => "<",
            Function::Le => "<=",
            Function::Eq => "==",
            Function::Ne => "!=",
            Function::Ge => ">=",
            Function::Gt => ">",
            Function::Includes => "includes",
            Function::Excludes => "excludes",
        }
    }
}

/// A `where` clause element, or a boolean constant (allowed in `monitor_cond` conditions).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare { column: String, function: Function, value: Datum },
    Const(bool),
}

impl Condition {
    pub fn new(column: &str, function: Function, value: impl Into<Datum>) -> Condition {
        Condition::Compare { column: column.to_string(), function, value: value.into() }
    }
    pub fn eq(column: &str, value: impl Into<Datum>) -> Condition {
        Self::new(column, Function::Eq, value)
    }
    pub fn ne(column: &str, value: impl Into<Datum>) -> Condition {
        Self::new(column, Function::Ne, value)
    }
    pub fn lt(column: &str, value: impl Into<Datum>) -> Condition {
        Self::new(column, Function::Lt, value)
    }
    pub fn gt(column: &str, value: impl Into<Datum>) -> Condition {
        Self::new(column, Function::Gt, value)
    }
    pub fn includes(column: &str, value: impl Into<Datum>) -> Condition {
        Self::new(column, Function::Includes, value)
    }
    pub fn excludes(column: &str, value: impl Into<Datum>) -> Condition {
        Self::new(column, Function::Excludes, value)
    }
    /// `_uuid == u`.
    pub fn uuid(u: Uuid) -> Condition {
        Self::eq("_uuid", Datum::uuid(u))
    }
    /// `external_ids` (or another string map column) contains `key=value`.
    pub fn map_entry(column: &str, key: &str, value: &str) -> Condition {
        Self::includes(column, Datum::map([(key, value)]))
    }
    fn check(&mut self, schema: &DatabaseSchema, table: &str) -> Result<()> {
        match self {
            Condition::Compare { column, function, value } => schema.check_condition(table, column, function.as_str(), value),
            Condition::Const(_) => Ok(()),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Condition::Compare { column, function, value } => (column, function.as_str(), value).serialize(s),
            Condition::Const(b) => s.serialize_bool(*b),
        }
    }
}

/// The `where` of an `update`, `mutate` or `delete`: at least one condition, or, said explicitly
/// with [`Where::every_row`], every row of the table. There is no empty constructor, so an
/// operation on every row cannot be written by accident; [`Operation::check`] (and
/// [`crate::Client::transact_unchecked`]) also refuse a `where` with no restricting condition
/// (none, or only `true` constants) that was not built with [`Where::every_row`].
///
/// Built from the same constructors as [`Condition`] (`Where::uuid(u)`, `Where::eq(column,
/// value)`, ...), more conditions added with [`Where::and`]; on the wire it is the usual array of
/// conditions (`every_row()` is `"where": []`).
#[derive(Debug, Clone, PartialEq)]
pub struct Where {
    conditions: Vec<Condition>,
    every_row: bool,
}

impl Where {
    /// Every row of the table: `"where": []`. Only for operations that really mean it.
    pub fn every_row() -> Where {
        Where { conditions: vec![], every_row: true }
    }
    /// The rows matching `c`.
    pub fn condition(c: Condition) -> Where {
        Where { conditions: vec![c], every_row: false }
    }
    /// The rows where `column function value` holds.
    pub fn new(column: &str, function: Function, value: impl Into<Datum>) -> Where {
        Self::condition(Condition::new(column, function, value))
    }
    pub fn eq(column: &str, value: impl Into<Datum>) -> Where {
        Self::condition(Condition::eq(column, value))
    }
    pub fn ne(column: &str, value: impl Into<Datum>) -> Where {
        Self::condition(Condition::ne(column, value))
    }
    pub fn lt(column: &str, value: impl Into<Datum>) -> Where {
        Self::condition(Condition::lt(column, value))
    }
    pub fn gt(column: &str, value: impl Into<Datum>) -> Where {
        Self::condition(Condition::gt(column, value))
    }
    pub fn includes(column: &str, value: impl Into<Datum>) -> Where {
        Self::condition(Condition::includes(column, value))
    }
    pub fn excludes(column: &str, value: impl Into<Datum>) -> Where {
        Self::condition(Condition::excludes(column, value))
    }
    /// The row `_uuid == u`.
    pub fn uuid(u: Uuid) -> Where {
        Self::condition(Condition::uuid(u))
    }
    /// The rows whose string map `column` contains `key=value`.
    pub fn map_entry(column: &str, key: &str, value: &str) -> Where {
        Self::condition(Condition::map_entry(column, key, value))
    }
    /// Also requires `c` (conditions of a `where` all have to hold).
    pub fn and(mut self, c: Condition) -> Where {
        self.conditions.push(c);
        self
    }
    /// The conditions, in order (empty for [`Where::every_row`]).
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    /// Built with [`Where::every_row`].
    pub fn is_every_row(&self) -> bool {
        self.every_row
    }
    /// Whether some condition restricts the rows (a `true` constant does not).
    fn restricts(&self) -> bool {
        self.conditions.iter().any(|c| !matches!(c, Condition::Const(true)))
    }
    /// Refuses a `where` that matches every row without having been built to (see [`Where`]).
    fn check_bounded(&self, op: &'static str, table: &str) -> Result<()> {
        if self.every_row || self.restricts() {
            Ok(())
        } else {
            Err(Error::UnboundedWhere { op, table: table.to_string() })
        }
    }
    fn check(&mut self, schema: &DatabaseSchema, op: &'static str, table: &str) -> Result<()> {
        self.check_bounded(op, table)?;
        self.conditions.iter_mut().try_for_each(|c| c.check(schema, table))
    }
}

impl From<Condition> for Where {
    fn from(c: Condition) -> Where {
        Where::condition(c)
    }
}

impl Serialize for Where {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.conditions.serialize(s)
    }
}

/// A mutation of the `mutate` operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub column: String,
    /// One of `+=`, `-=`, `*=`, `/=`, `%=`, `insert`, `delete`.
    pub mutator: &'static str,
    pub value: Datum,
}

impl Mutation {
    fn new(column: &str, mutator: &'static str, value: impl Into<Datum>) -> Mutation {
        Mutation { column: column.to_string(), mutator, value: value.into() }
    }
    /// Adds elements to a set or pairs to a map (existing map keys keep their value).
    pub fn insert(column: &str, value: impl Into<Datum>) -> Mutation {
        Self::new(column, "insert", value)
    }
    /// Removes elements from a set, pairs from a map, or (given a set of keys) keys from a map.
    pub fn delete(column: &str, value: impl Into<Datum>) -> Mutation {
        Self::new(column, "delete", value)
    }
    pub fn add(column: &str, value: impl Into<Datum>) -> Mutation {
        Self::new(column, "+=", value)
    }
    pub fn sub(column: &str, value: impl Into<Datum>) -> Mutation {
        Self::new(column, "-=", value)
    }
    pub fn mul(column: &str, value: impl Into<Datum>) -> Mutation {
        Self::new(column, "*=", value)
    }
    pub fn div(column: &str, value: impl Into<Datum>) -> Mutation {
        Self::new(column, "/=", value)
    }
    pub fn rem(column: &str, value: impl Into<Datum>) -> Mutation {
        Self::new(column, "%=", value)
    }
}

impl Serialize for Mutation {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.column, self.mutator, &self.value).serialize(s)
    }
}

/// `until` of the `wait` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    Equal,
    NotEqual,
}

/// One operation of a transaction. Build with the constructors (`Operation::insert("T")`,
/// `Operation::delete("T", Where::uuid(u))` ...) and the builder methods; methods that do not
/// apply to an operation kind are ignored. `update`, `mutate` and `delete` take their `where` as a
/// [`Where`], which cannot be empty by accident; `select` and `wait` start with no condition
/// (every row) and take them through [`Operation::filter`].
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Insert { table: String, row: Row, uuid_name: Option<String>, uuid: Option<Uuid> },
    Select { table: String, conditions: Vec<Condition>, columns: Option<Vec<String>> },
    Update { table: String, conditions: Where, row: Row },
    Mutate { table: String, conditions: Where, mutations: Vec<Mutation> },
    Delete { table: String, conditions: Where },
    Wait { table: String, conditions: Vec<Condition>, columns: Vec<String>, until: WaitUntil, rows: Vec<Row>, timeout_ms: Option<u64> },
    Commit { durable: bool },
    Abort,
    Comment(String),
    Assert { lock: String },
}

impl Operation {
    pub fn insert(table: &str) -> Operation {
        Operation::Insert { table: table.into(), row: Row::new(), uuid_name: None, uuid: None }
    }
    pub fn select(table: &str) -> Operation {
        Operation::Select { table: table.into(), conditions: vec![], columns: None }
    }
    /// `update` of the rows matching `w` (columns given with [`Operation::set`] or [`Operation::row`]).
    pub fn update(table: &str, w: Where) -> Operation {
        Operation::Update { table: table.into(), conditions: w, row: Row::new() }
    }
    /// `mutate` of the rows matching `w` (mutations given with [`Operation::mutation`]).
    pub fn mutate(table: &str, w: Where) -> Operation {
        Operation::Mutate { table: table.into(), conditions: w, mutations: vec![] }
    }
    /// `delete` of the rows matching `w`.
    pub fn delete(table: &str, w: Where) -> Operation {
        Operation::Delete { table: table.into(), conditions: w }
    }
    /// `wait` until the rows matching the conditions, projected on `columns`, equal `rows`
    /// (change with [`Operation::until`]).
    pub fn wait(table: &str) -> Operation {
        Operation::Wait {
            table: table.into(),
            conditions: vec![],
            columns: vec![],
            until: WaitUntil::Equal,
            rows: vec![],
            timeout_ms: None,
        }
    }
    pub fn commit(durable: bool) -> Operation {
        Operation::Commit { durable }
    }
    pub fn abort() -> Operation {
        Operation::Abort
    }
    pub fn comment(text: impl Into<String>) -> Operation {
        Operation::Comment(text.into())
    }
    pub fn assert_lock(lock: impl Into<String>) -> Operation {
        Operation::Assert { lock: lock.into() }
    }

    /// Sets a column of an insert's or update's row.
    pub fn set(mut self, column: &str, value: impl Into<Datum>) -> Operation {
        if let Operation::Insert { row, .. } | Operation::Update { row, .. } = &mut self {
            row.insert(column, value.into());
        }
        self
    }
    /// Replaces the row of an insert or update (or adds a row to a wait).
    pub fn row(mut self, r: Row) -> Operation {
        match &mut self {
            Operation::Insert { row, .. } | Operation::Update { row, .. } => *row = r,
            Operation::Wait { rows, .. } => rows.push(r),
            _ => {}
        }
        self
    }
    /// The `uuid-name` of an insert, to refer to the new row as `Datum::named_uuid(name)`.
    pub fn uuid_name(mut self, name: impl Into<String>) -> Operation {
        if let Operation::Insert { uuid_name, .. } = &mut self {
            *uuid_name = Some(name.into());
        }
        self
    }
    /// The UUID to give an inserted row (ovsdb-server 2.13+ `uuid` member).
    pub fn with_uuid(mut self, u: Uuid) -> Operation {
        if let Operation::Insert { uuid, .. } = &mut self {
            *uuid = Some(u);
        }
        self
    }
    /// Adds a condition (`where` clause element) to a select or wait, or one more to the [`Where`]
    /// of an update, mutate or delete.
    pub fn filter(mut self, c: Condition) -> Operation {
        match &mut self {
            Operation::Select { conditions, .. } | Operation::Wait { conditions, .. } => conditions.push(c),
            Operation::Update { conditions, .. } | Operation::Mutate { conditions, .. } | Operation::Delete { conditions, .. } => {
                conditions.conditions.push(c)
            }
            _ => {}
        }
        self
    }
    /// Shorthand for `filter(Condition::eq(column, value))`.
    pub fn where_eq(self, column: &str, value: impl Into<Datum>) -> Operation {
        self.filter(Condition::eq(column, value))
    }
    /// Columns to return from a select, or to compare in a wait.
    pub fn columns<S: AsRef<str>>(mut self, cols: impl IntoIterator<Item = S>) -> Operation {
        let v: Vec<String> = cols.into_iter().map(|c| c.as_ref().to_string()).collect();
        match &mut self {
            Operation::Select { columns, .. } => *columns = Some(v),
            Operation::Wait { columns, .. } => *columns = v,
            _ => {}
        }
        self
    }
    /// Adds a mutation to a mutate.
    pub fn mutation(mut self, m: Mutation) -> Operation {
        if let Operation::Mutate { mutations, .. } = &mut self {
            mutations.push(m);
        }
        self
    }
    pub fn until(mut self, u: WaitUntil) -> Operation {
        if let Operation::Wait { until, .. } = &mut self {
            *until = u;
        }
        self
    }
    pub fn timeout_ms(mut self, ms: u64) -> Operation {
        if let Operation::Wait { timeout_ms, .. } = &mut self {
            *timeout_ms = Some(ms);
        }
        self
    }

    /// The `op` name.
    pub fn op_name(&self) -> &'static str {
        match self {
            Operation::Insert { .. } => "insert",
            Operation::Select { .. } => "select",
            Operation::Update { .. } => "update",
            Operation::Mutate { .. } => "mutate",
            Operation::Delete { .. } => "delete",
            Operation::Wait { .. } => "wait",
            Operation::Commit { .. } => "commit",
            Operation::Abort => "abort",
            Operation::Comment(_) => "comment",
            Operation::Assert { .. } => "assert",
        }
    }

    /// Refuses an update, mutate or delete whose `where` restricts nothing without having been
    /// built with [`Where::every_row`] ([`Error::UnboundedWhere`]). Needs no schema; part of
    /// [`Operation::check`], and [`crate::Client::transact_unchecked`] runs it too.
    pub fn check_where(&self) -> Result<()> {
        match self {
            Operation::Update { table, conditions, .. }
            | Operation::Mutate { table, conditions, .. }
            | Operation::Delete { table, conditions } => conditions.check_bounded(self.op_name(), table),
            _ => Ok(()),
        }
    }

    /// Normalizes and checks every value of this operation against the schema, and that an
    /// update, mutate or delete does not apply to every row by accident ([`Operation::check_where`]).
    pub fn check(&mut self, schema: &DatabaseSchema) -> Result<()> {
        let op = self.op_name();
        match self {
            Operation::Insert { table, row, .. } => schema.check_row(table, row, false),
            Operation::Update { table, conditions, row } => {
                conditions.check(schema, op, table)?;
                schema.check_row(table, row, true)
            }
            Operation::Select { table, conditions, columns } => {
                conditions.iter_mut().try_for_each(|c| c.check(schema, table))?;
                match columns {
                    Some(c) => schema.check_columns(table, c),
                    None => schema.table(table).map(|_| ()),
                }
            }
            Operation::Mutate { table, conditions, mutations } => {
                conditions.check(schema, op, table)?;
                mutations.iter_mut().try_for_each(|m| schema.check_mutation(table, &m.column, m.mutator, &mut m.value))
            }
            Operation::Delete { table, conditions } => {
                schema.table(table)?;
                conditions.check(schema, op, table)
            }
            Operation::Wait { table, conditions, columns, rows, .. } => {
                conditions.iter_mut().try_for_each(|c| c.check(schema, table))?;
                schema.check_columns(table, columns)?;
                let t = schema.table(table)?;
                for r in rows.iter_mut() {
                    for (c, d) in r.cols_mut().iter_mut() {
                        let ty = t.column_type(c).ok_or_else(|| Error::check(table, c, d.to_string(), "no such column"))?;
                        ty.normalize(d);
                        ty.check(d).map_err(|e| Error::check(table, c, d.to_string(), e))?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("op", self.op_name())?;
        match self {
            Operation::Insert { table, row, uuid_name, uuid } => {
                m.serialize_entry("table", table)?;
                m.serialize_entry("row", row)?;
                if let Some(n) = uuid_name {
                    m.serialize_entry("uuid-name", n)?;
                }
                if let Some(u) = uuid {
                    m.serialize_entry("uuid", &u.to_string())?;
                }
            }
            Operation::Select { table, conditions, columns } => {
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
                if let Some(c) = columns {
                    m.serialize_entry("columns", c)?;
                }
            }
            Operation::Update { table, conditions, row } => {
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
                m.serialize_entry("row", row)?;
            }
            Operation::Mutate { table, conditions, mutations } => {
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
                m.serialize_entry("mutations", mutations)?;
            }
            Operation::Delete { table, conditions } => {
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
            }
            Operation::Wait { table, conditions, columns, until, rows, timeout_ms } => {
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
                m.serialize_entry("columns", columns)?;
                m.serialize_entry("until", if *until == WaitUntil::Equal { "==" } else { "!=" })?;
                m.serialize_entry("rows", rows)?;
                if let Some(t) = timeout_ms {
                    m.serialize_entry("timeout", t)?;
                }
            }
            Operation::Commit { durable } => m.serialize_entry("durable", durable)?,
            Operation::Abort => {}
            Operation::Comment(c) => m.serialize_entry("comment", c)?,
            Operation::Assert { lock } => m.serialize_entry("lock", lock)?,
        }
        m.end()
    }
}

/// Serializes `["db", op, op, ...]`.
pub(crate) fn transact_params(db: &str, ops: &[Operation]) -> Result<Vec<u8>> {
    struct P<'a>(&'a str, &'a [Operation]);
    impl Serialize for P<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.1.len() + 1))?;
            seq.serialize_element(self.0)?;
            for op in self.1 {
                seq.serialize_element(op)?;
            }
            seq.end()
        }
    }
    serde_json::to_vec(&P(db, ops)).map_err(|e| Error::Protocol(format!("serializing transaction: {e}")))
}

/// The result of one successful operation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct OpResult {
    /// UUID of the row created by an insert.
    #[serde(default, deserialize_with = "de_uuid")]
    pub uuid: Option<Uuid>,
    /// Rows returned by a select.
    #[serde(default)]
    pub rows: Option<Vec<Row>>,
    /// Rows matched by update, mutate or delete.
    #[serde(default)]
    pub count: Option<u64>,
}

fn de_uuid<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Uuid>, D::Error> {
    let v = Option::<Datum>::deserialize(d)?;
    Ok(v.and_then(|d| d.as_uuid()))
}

#[derive(Deserialize)]
struct RawResult {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(flatten)]
    ok: OpResultFields,
}

#[derive(Deserialize)]
struct OpResultFields {
    #[serde(default, deserialize_with = "de_uuid")]
    uuid: Option<Uuid>,
    #[serde(default)]
    rows: Option<Vec<Row>>,
    #[serde(default)]
    count: Option<u64>,
}

/// Turns the raw `transact` reply into per-operation results or the first error.
pub(crate) fn parse_transact_reply(ops: &[Operation], raw: &[u8]) -> Result<Vec<OpResult>> {
    let items: Vec<Option<Value>> = serde_json::from_slice(raw).map_err(|e| Error::Protocol(format!("bad transact reply: {e}")))?;
    let mut out = Vec::with_capacity(ops.len());
    let mut first_err: Option<TxnError> = None;
    for (i, item) in items.into_iter().enumerate() {
        let Some(v) = item else {
            // Operations after a failing one are not executed and reported as null.
            continue;
        };
        let r: RawResult = serde_json::from_value(v).map_err(|e| Error::Protocol(format!("bad result of operation {i}: {e}")))?;
        if let Some(error) = r.error {
            if first_err.is_none() {
                let (index, op) = if i < ops.len() { (Some(i), Some(ops[i].op_name().to_string())) } else { (None, None) };
                first_err = Some(TxnError { index, op, error, details: r.details });
            }
            continue;
        }
        out.push(OpResult { uuid: r.ok.uuid, rows: r.ok.rows, count: r.ok.count });
    }
    if let Some(e) = first_err {
        return Err(Error::Transaction(e));
    }
    if out.len() < ops.len() {
        return Err(Error::Protocol(format!("transact reply has {} results for {} operations", out.len(), ops.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialize_ops() {
        let op = Operation::insert("Logical_Switch").set("name", "ls1").uuid_name("ls");
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"op":"insert","table":"Logical_Switch","row":{"name":"ls1"},"uuid-name":"ls"}"#
        );
        let op = Operation::mutate("Logical_Switch", Where::eq("name", "ls1"))
            .mutation(Mutation::insert("ports", Datum::set([Datum::named_uuid("p").as_atom().unwrap().clone()])));
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"op":"mutate","table":"Logical_Switch","where":[["name","==","ls1"]],"mutations":[["ports","insert",["named-uuid","p"]]]}"#
        );
        let p = transact_params("DB", &[Operation::comment("hi"), Operation::commit(false)]).unwrap();
        assert_eq!(std::str::from_utf8(&p).unwrap(), r#"["DB",{"op":"comment","comment":"hi"},{"op":"commit","durable":false}]"#);
    }

    fn json(op: &Operation) -> Value {
        serde_json::to_value(op).unwrap()
    }

    /// delete/update/mutate with a `Where` are the RFC 7047 (5.2.4 to 5.2.6) objects, conditions
    /// `[column, function, value]` in the order given.
    #[test]
    fn where_wire_shape_is_rfc_7047() {
        let u = Uuid::parse_str("36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c").unwrap();
        let uuid_json = serde_json::json!(["uuid", "36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c"]);
        assert_eq!(
            json(&Operation::delete("Logical_Switch", Where::uuid(u))),
            serde_json::json!({"op": "delete", "table": "Logical_Switch", "where": [["_uuid", "==", uuid_json]]})
        );
        assert_eq!(
            serde_json::to_string(&Operation::delete("T", Where::eq("name", "a"))).unwrap(),
            r#"{"op":"delete","table":"T","where":[["name","==","a"]]}"#
        );
        let op = Operation::update("Logical_Switch_Port", Where::eq("name", "p1").and(Condition::new("tag", Function::Gt, 5)))
            .set("enabled", false);
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"op":"update","table":"Logical_Switch_Port","where":[["name","==","p1"],["tag",">",5]],"row":{"enabled":false}}"#
        );
        let op = Operation::mutate("Logical_Switch", Where::includes("ports", Datum::uuid(u)))
            .mutation(Mutation::delete("ports", Datum::uuid(u)))
            .mutation(Mutation::add("n", 1));
        assert_eq!(
            json(&op),
            serde_json::json!({
                "op": "mutate", "table": "Logical_Switch",
                "where": [["ports", "includes", uuid_json]],
                "mutations": [["ports", "delete", uuid_json], ["n", "+=", 1]],
            })
        );
        let op = Operation::update("T", Where::map_entry("external_ids", "k", "v").and(Condition::excludes("s", "x"))).set("a", 1);
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"op":"update","table":"T","where":[["external_ids","includes",["map",[["k","v"]]]],["s","excludes","x"]],"row":{"a":1}}"#
        );
        // Every constructor is the Condition constructor of the same name, as the only condition.
        for (w, c) in [
            (Where::new("c", Function::Le, 1), Condition::new("c", Function::Le, 1)),
            (Where::ne("c", 1), Condition::ne("c", 1)),
            (Where::lt("c", 1), Condition::lt("c", 1)),
            (Where::gt("c", 1), Condition::gt("c", 1)),
            (Where::excludes("c", "x"), Condition::excludes("c", "x")),
            (Where::condition(Condition::Const(false)), Condition::Const(false)),
            (Condition::eq("c", 1).into(), Condition::eq("c", 1)),
        ] {
            assert_eq!(w.conditions(), std::slice::from_ref(&c));
            assert!(!w.is_every_row());
            assert_eq!(json(&Operation::delete("T", w))["where"], serde_json::json!([c]));
        }
        // `filter` after the constructor adds to the `Where`, as `and` does.
        assert_eq!(
            Operation::delete("T", Where::uuid(u)).filter(Condition::eq("name", "a")),
            Operation::delete("T", Where::uuid(u).and(Condition::eq("name", "a")))
        );
    }

    #[test]
    fn every_row_is_an_empty_where() {
        let w = Where::every_row();
        assert!(w.is_every_row() && w.conditions().is_empty());
        assert_eq!(serde_json::to_string(&Operation::delete("T", w.clone())).unwrap(), r#"{"op":"delete","table":"T","where":[]}"#);
        assert_eq!(
            serde_json::to_string(&Operation::update("T", w.clone()).set("a", 1)).unwrap(),
            r#"{"op":"update","table":"T","where":[],"row":{"a":1}}"#
        );
        assert_eq!(
            serde_json::to_string(&Operation::mutate("T", w).mutation(Mutation::add("n", 1))).unwrap(),
            r#"{"op":"mutate","table":"T","where":[],"mutations":[["n","+=",1]]}"#
        );
        // select keeps its optional filter: no condition is every row.
        assert_eq!(serde_json::to_string(&Operation::select("T")).unwrap(), r#"{"op":"select","table":"T","where":[]}"#);
    }

    fn schema() -> DatabaseSchema {
        DatabaseSchema::from_json(&serde_json::json!({
            "name": "DB", "version": "1.0.0",
            "tables": {"T": {"columns": {"name": {"type": "string"}, "n": {"type": "integer"}}}},
        }))
        .unwrap()
    }

    /// A `where` restricting nothing (none, or only `true`) that was not built with `every_row()`
    /// is refused by `check` and `check_where`, for each of delete, update and mutate.
    #[test]
    fn check_refuses_an_unbounded_where() {
        let schema = schema();
        let unbounded = [Where { conditions: vec![], every_row: false }, Where::condition(Condition::Const(true))];
        for w in unbounded {
            for op in [
                Operation::delete("T", w.clone()),
                Operation::update("T", w.clone()).set("n", 1),
                Operation::mutate("T", w.clone()).mutation(Mutation::add("n", 1)),
            ] {
                let name = op.op_name();
                match op.check_where() {
                    Err(Error::UnboundedWhere { op, table }) => assert_eq!((op, table.as_str()), (name, "T")),
                    other => panic!("{name} with {w:?}: expected UnboundedWhere, got {other:?}"),
                }
                let e = op.clone().check(&schema).unwrap_err();
                assert!(matches!(e, Error::UnboundedWhere { op, .. } if op == name), "{e}");
                assert!(e.to_string().contains("Where::every_row()"), "{e}");
            }
        }
        // Said explicitly, or restricted by some condition: accepted.
        for w in [
            Where::every_row(),
            Where::eq("name", "a"),
            Where::condition(Condition::Const(true)).and(Condition::eq("n", 2)),
            Where::condition(Condition::Const(false)),
        ] {
            for mut op in [
                Operation::delete("T", w.clone()),
                Operation::update("T", w.clone()).set("n", 1),
                Operation::mutate("T", w.clone()).mutation(Mutation::add("n", 1)),
            ] {
                op.check_where().unwrap();
                op.check(&schema).unwrap_or_else(|e| panic!("{op:?}: {e}"));
            }
        }
        // The schema check of the conditions still runs after the bound check.
        let e = Operation::delete("T", Where::eq("nope", 1)).check(&schema).unwrap_err();
        assert!(matches!(e, Error::Check(_)), "{e}");
        // select and wait keep accepting no condition.
        Operation::select("T").check(&schema).unwrap();
        Operation::wait("T").columns(["n"]).check(&schema).unwrap();
    }

    #[test]
    fn reply_errors() {
        let ops = vec![Operation::insert("T"), Operation::insert("T")];
        let ok = parse_transact_reply(&ops, br#"[{"uuid":["uuid","36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c"]},{"count":1}]"#).unwrap();
        assert!(ok[0].uuid.is_some());
        let e = parse_transact_reply(&ops, br#"[{},{"error":"constraint violation","details":"bad"},null]"#).unwrap_err();
        let t = e.txn().unwrap();
        assert_eq!((t.index, t.error.as_str(), t.details.as_deref()), (Some(1), "constraint violation", Some("bad")));
        let e = parse_transact_reply(&ops, br#"[{},{},{"error":"referential integrity violation","details":"x"}]"#).unwrap_err();
        assert_eq!(e.txn().unwrap().index, None);
    }
}
