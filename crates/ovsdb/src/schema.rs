//! Database schemas (RFC 7047 section 3.2) and client-side checking of values against them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::datum::{intern, Atom, Datum, Row};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    fn parse(s: &str) -> Option<AtomicType> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    Strong,
    Weak,
}

/// The type of a key or value, with its constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseType {
    pub atomic: AtomicType,
    /// Allowed values, sorted.
    pub enumeration: Option<Vec<Atom>>,
    pub min_integer: Option<i64>,
    pub max_integer: Option<i64>,
    pub min_real: Option<f64>,
    pub max_real: Option<f64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub ref_table: Option<String>,
    pub ref_type: RefType,
}

impl BaseType {
    fn simple(atomic: AtomicType) -> BaseType {
        BaseType {
            atomic,
            enumeration: None,
            min_integer: None,
            max_integer: None,
            min_real: None,
            max_real: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_type: RefType::Strong,
        }
    }

    fn parse(v: &Value) -> Result<BaseType, String> {
        match v {
            Value::String(s) => AtomicType::parse(s).map(BaseType::simple).ok_or_else(|| format!("unknown atomic type {s:?}")),
            Value::Object(o) => {
                let t = o.get("type").and_then(Value::as_str).ok_or("base type without \"type\"")?;
                let mut b = BaseType::simple(AtomicType::parse(t).ok_or_else(|| format!("unknown atomic type {t:?}"))?);
                if let Some(e) = o.get("enum") {
                    let d: Datum = serde_json::from_value(e.clone()).map_err(|e| format!("bad enum: {e}"))?;
                    let mut atoms = d.as_set().ok_or("enum is a map")?.to_vec();
                    if b.atomic == AtomicType::Real {
                        atoms.iter_mut().for_each(int_to_real);
                        atoms.sort();
                    }
                    b.enumeration = Some(atoms);
                }
                b.min_integer = o.get("minInteger").and_then(Value::as_i64);
                b.max_integer = o.get("maxInteger").and_then(Value::as_i64);
                b.min_real = o.get("minReal").and_then(Value::as_f64);
                b.max_real = o.get("maxReal").and_then(Value::as_f64);
                b.min_length = o.get("minLength").and_then(Value::as_u64).map(|v| v as usize);
                b.max_length = o.get("maxLength").and_then(Value::as_u64).map(|v| v as usize);
                b.ref_table = o.get("refTable").and_then(Value::as_str).map(str::to_string);
                if o.get("refType").and_then(Value::as_str) == Some("weak") {
                    b.ref_type = RefType::Weak;
                }
                Ok(b)
            }
            other => Err(format!("bad base type {other}")),
        }
    }

    /// Checks one atom; returns a reason on failure.
    pub fn check(&self, a: &Atom) -> Result<(), String> {
        let ok_type = matches!(
            (self.atomic, a),
            (AtomicType::Integer, Atom::Integer(_))
                | (AtomicType::Real, Atom::Real(_))
                | (AtomicType::Boolean, Atom::Boolean(_))
                | (AtomicType::String, Atom::String(_))
                | (AtomicType::Uuid, Atom::Uuid(_) | Atom::NamedUuid(_))
        );
        if !ok_type {
            return Err(format!("expected {}, got {}", self.atomic.name(), a.type_name()));
        }
        if let Some(e) = &self.enumeration {
            if e.binary_search(a).is_err() {
                let allowed: Vec<String> = e.iter().map(|x| x.to_string()).collect();
                return Err(format!("not one of the allowed values [{}]", allowed.join(", ")));
            }
        }
        match a {
            Atom::Integer(i) => {
                if let Some(m) = self.min_integer.filter(|m| i < m) {
                    return Err(format!("less than the minimum {m}"));
                }
                if let Some(m) = self.max_integer.filter(|m| i > m) {
                    return Err(format!("greater than the maximum {m}"));
                }
            }
            Atom::Real(r) => {
                if !r.is_finite() {
                    return Err("not a finite number".into());
                }
                if let Some(m) = self.min_real.filter(|m| r < m) {
                    return Err(format!("less than the minimum {m}"));
                }
                if let Some(m) = self.max_real.filter(|m| r > m) {
                    return Err(format!("greater than the maximum {m}"));
                }
            }
            Atom::String(s) => {
                let n = s.chars().count();
                if let Some(m) = self.min_length.filter(|m| n < *m) {
                    return Err(format!("shorter than the minimum length {m}"));
                }
                if let Some(m) = self.max_length.filter(|m| n > *m) {
                    return Err(format!("longer than the maximum length {m}"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn int_to_real(a: &mut Atom) {
    if let Atom::Integer(i) = a {
        *a = Atom::Real(*i as f64);
    }
}

/// A column type: key, optional value (then it is a map), and size bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: usize,
    /// `None` means "unlimited".
    pub max: Option<usize>,
}

impl ColumnType {
    fn parse(v: &Value) -> Result<ColumnType, String> {
        match v {
            Value::String(_) => Ok(ColumnType { key: BaseType::parse(v)?, value: None, min: 1, max: Some(1) }),
            Value::Object(o) => {
                let key = BaseType::parse(o.get("key").ok_or("column type without \"key\"")?)?;
                let value = o.get("value").map(BaseType::parse).transpose()?;
                let min = o.get("min").map(|m| m.as_u64().ok_or("bad min")).transpose()?.unwrap_or(1) as usize;
                let max = match o.get("max") {
                    None => Some(1),
                    Some(Value::String(s)) if s == "unlimited" => None,
                    Some(m) => Some(m.as_u64().ok_or("bad max")? as usize),
                };
                Ok(ColumnType { key, value, min, max })
            }
            other => Err(format!("bad column type {other}")),
        }
    }
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }
    /// Exactly one element, not a map: update2 diffs carry the new value for such columns.
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Some(1)
    }
    /// Brings a datum received from the wire into the canonical form of this type: integers in
    /// real positions become reals, and an empty set in a map column becomes an empty map.
    pub fn normalize(&self, d: &mut Datum) {
        let kr = self.key.atomic == AtomicType::Real;
        let vr = self.value.as_ref().is_some_and(|v| v.atomic == AtomicType::Real);
        if kr || vr {
            d.map_atoms(
                |k| {
                    if kr {
                        int_to_real(k)
                    }
                },
                |v| {
                    if vr {
                        int_to_real(v)
                    }
                },
            );
        }
        if self.is_map() {
            d.coerce_empty_map();
        }
    }
    /// Checks a whole datum; returns a reason on failure.
    pub fn check(&self, d: &Datum) -> Result<(), String> {
        let n = d.len();
        if n < self.min {
            return Err(format!("has {n} elements, the minimum is {}", self.min));
        }
        if let Some(max) = self.max.filter(|m| n > *m) {
            return Err(format!("has {n} elements, the maximum is {max}"));
        }
        match &self.value {
            Some(vt) => {
                let m = d.as_map().ok_or("expected a map, got a set")?;
                for (k, v) in m {
                    self.key.check(k).map_err(|e| format!("key {k}: {e}"))?;
                    vt.check(v).map_err(|e| format!("value {v} of key {k}: {e}"))?;
                }
            }
            None => {
                let s = d.as_set().ok_or("expected a set or scalar, got a map")?;
                for a in s {
                    self.key.check(a).map_err(|e| if s.len() > 1 { format!("element {a}: {e}") } else { e })?;
                }
            }
        }
        Ok(())
    }
    /// The type of one element of a set (or the key of a map) as a 1-element column type.
    fn element(&self) -> ColumnType {
        ColumnType { key: self.key.clone(), value: None, min: 1, max: Some(1) }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    pub name: Arc<str>,
    pub ty: ColumnType,
    pub ephemeral: bool,
    pub mutable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub columns: BTreeMap<Arc<str>, ColumnSchema>,
    pub max_rows: Option<usize>,
    pub is_root: bool,
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.get(name)
    }
    /// The type of a column, including the implicit `_uuid` and `_version`.
    pub fn column_type(&self, name: &str) -> Option<&ColumnType> {
        match name {
            "_uuid" | "_version" => Some(uuid_type()),
            _ => self.columns.get(name).map(|c| &c.ty),
        }
    }
}

fn uuid_type() -> &'static ColumnType {
    static T: std::sync::OnceLock<ColumnType> = std::sync::OnceLock::new();
    T.get_or_init(|| ColumnType { key: BaseType::simple(AtomicType::Uuid), value: None, min: 1, max: Some(1) })
}

/// A parsed database schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSchema {
    pub name: String,
    pub version: Option<String>,
    pub cksum: Option<String>,
    pub tables: BTreeMap<String, TableSchema>,
}

impl DatabaseSchema {
    /// Parses a schema from its JSON form (the `get_schema` reply or a `.ovsschema` file).
    pub fn from_json(v: &Value) -> Result<DatabaseSchema> {
        let bad = |m: String| Error::Schema(m);
        let o = v.as_object().ok_or_else(|| bad("schema is not an object".into()))?;
        let name = o.get("name").and_then(Value::as_str).ok_or_else(|| bad("schema without name".into()))?.to_string();
        let mut tables = BTreeMap::new();
        let tabs = o.get("tables").and_then(Value::as_object).ok_or_else(|| bad(format!("schema {name} without tables")))?;
        for (tname, t) in tabs {
            let cols = t.get("columns").and_then(Value::as_object).ok_or_else(|| bad(format!("table {tname} without columns")))?;
            let mut columns = BTreeMap::new();
            for (cname, c) in cols {
                let ty = ColumnType::parse(c.get("type").unwrap_or(&Value::Null))
                    .map_err(|e| bad(format!("table {tname} column {cname}: {e}")))?;
                let n = intern(cname);
                columns.insert(
                    n.clone(),
                    ColumnSchema {
                        name: n,
                        ty,
                        ephemeral: c.get("ephemeral").and_then(Value::as_bool).unwrap_or(false),
                        mutable: c.get("mutable").and_then(Value::as_bool).unwrap_or(true),
                    },
                );
            }
            let indexes = t
                .get("indexes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.as_array().map(|c| c.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()))
                        .collect()
                })
                .unwrap_or_default();
            tables.insert(
                tname.clone(),
                TableSchema {
                    name: tname.clone(),
                    columns,
                    max_rows: t.get("maxRows").and_then(Value::as_u64).map(|v| v as usize),
                    is_root: t.get("isRoot").and_then(Value::as_bool).unwrap_or(false),
                    indexes,
                },
            );
        }
        Ok(DatabaseSchema {
            name,
            version: o.get("version").and_then(Value::as_str).map(str::to_string),
            cksum: o.get("cksum").and_then(Value::as_str).map(str::to_string),
            tables,
        })
    }

    /// Reads a `.ovsschema` file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<DatabaseSchema> {
        let text = std::fs::read(path.as_ref())?;
        let v: Value = serde_json::from_slice(&text).map_err(|e| Error::Schema(format!("{}: {e}", path.as_ref().display())))?;
        Self::from_json(&v)
    }

    pub fn table(&self, name: &str) -> Result<&TableSchema> {
        self.tables.get(name).ok_or_else(|| Error::check(name, "", "", format!("no table {name:?} in database {}", self.name)))
    }

    fn column<'a>(&self, t: &'a TableSchema, column: &str) -> Result<&'a ColumnType> {
        t.column_type(column).ok_or_else(|| Error::check(&t.name, column, "", format!("no column {column:?} in table {}", t.name)))
    }

    /// Normalizes and checks every column of a row for insert/update.
    pub fn check_row(&self, table: &str, row: &mut Row, updating: bool) -> Result<()> {
        let t = self.table(table)?;
        for (col, d) in row.cols_mut().iter_mut() {
            let cs = t.columns.get(&**col).ok_or_else(|| {
                Error::check(table, col, d.to_string(), format!("no column {col:?} in table {table} (or it is read-only)"))
            })?;
            if updating && !cs.mutable {
                return Err(Error::check(table, col, d.to_string(), "column is immutable"));
            }
            cs.ty.normalize(d);
            cs.ty.check(d).map_err(|e| Error::check(table, col, d.to_string(), e))?;
        }
        Ok(())
    }

    /// Normalizes and checks a condition value; `function` decides the expected type.
    pub fn check_condition(&self, table: &str, column: &str, function: &str, value: &mut Datum) -> Result<()> {
        let t = self.table(table)?;
        let ty = self.column(t, column)?;
        ty.normalize(value);
        let res = match function {
            "<" | "<=" | ">" | ">=" => {
                if !matches!(ty.key.atomic, AtomicType::Integer | AtomicType::Real) || ty.is_map() || ty.max != Some(1) {
                    Err(format!("function {function} needs an integer or real scalar column"))
                } else {
                    ty.element().check(value)
                }
            }
            "==" | "!=" | "includes" | "excludes" => {
                let relaxed = ColumnType { min: 0, max: if function.len() == 2 { ty.max } else { None }, ..ty.clone() };
                if function.len() == 2 {
                    ColumnType { min: ty.min, ..relaxed }.check(value)
                } else {
                    relaxed.check(value)
                }
            }
            other => Err(format!("unknown condition function {other:?}")),
        };
        res.map_err(|e| Error::check(table, column, value.to_string(), e))
    }

    /// Normalizes and checks a mutation.
    pub fn check_mutation(&self, table: &str, column: &str, mutator: &str, value: &mut Datum) -> Result<()> {
        let t = self.table(table)?;
        let cs = t
            .columns
            .get(column)
            .ok_or_else(|| Error::check(table, column, value.to_string(), format!("no column {column:?} in table {table}")))?;
        if !cs.mutable {
            return Err(Error::check(table, column, value.to_string(), "column is immutable"));
        }
        let ty = &cs.ty;
        ty.normalize(value);
        let res = match mutator {
            "+=" | "-=" | "*=" | "/=" | "%=" => {
                let numeric = match ty.key.atomic {
                    AtomicType::Integer => true,
                    AtomicType::Real => mutator != "%=",
                    _ => false,
                };
                if !numeric || ty.is_map() {
                    Err(format!("mutator {mutator} needs an integer or real column"))
                } else if mutator == "/=" || mutator == "%=" {
                    match value.as_atom() {
                        Some(Atom::Integer(0)) => Err("division by zero".to_string()),
                        Some(_) => Ok(()),
                        None => Err("expected a single number".to_string()),
                    }
                } else {
                    // The operand is one number; range checks apply to the result, on the server.
                    let mut el = ty.element();
                    el.key.min_integer = None;
                    el.key.max_integer = None;
                    el.key.min_real = None;
                    el.key.max_real = None;
                    el.check(value)
                }
            }
            "insert" => ColumnType { min: 0, max: None, ..ty.clone() }.check(value),
            "delete" => {
                if ty.is_map() && !value.is_map() && !value.is_empty() {
                    // Deleting keys from a map: a set of keys.
                    ColumnType { value: None, min: 0, max: None, ..ty.clone() }.check(value)
                } else {
                    ColumnType { min: 0, max: None, ..ty.clone() }.check(value)
                }
            }
            other => Err(format!("unknown mutator {other:?}")),
        };
        res.map_err(|e| Error::check(table, column, value.to_string(), e))
    }

    /// Checks that `columns` exist in `table`.
    pub fn check_columns(&self, table: &str, columns: &[String]) -> Result<()> {
        let t = self.table(table)?;
        for c in columns {
            self.column(t, c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb() -> DatabaseSchema {
        DatabaseSchema::from_file("/usr/share/ovn/ovn-nb.ovsschema").expect("nb schema")
    }

    #[test]
    fn parse_nb() {
        let s = nb();
        assert_eq!(s.name, "OVN_Northbound");
        let lsp = s.table("Logical_Switch_Port").unwrap();
        let tag = &lsp.column("tag").unwrap().ty;
        assert_eq!((tag.min, tag.max, tag.key.min_integer, tag.key.max_integer), (0, Some(1), Some(1), Some(4095)));
        assert!(lsp.column("external_ids").unwrap().ty.is_map());
        assert!(lsp.column("name").unwrap().ty.is_scalar());
        let acl = s.table("ACL").unwrap();
        assert!(acl.column("action").unwrap().ty.key.enumeration.as_ref().unwrap().contains(&Atom::from("allow")));
    }

    #[test]
    fn parse_all_installed() {
        for (f, name) in
            [("/usr/share/ovn/ovn-sb.ovsschema", "OVN_Southbound"), ("/usr/share/openvswitch/vswitch.ovsschema", "Open_vSwitch")]
        {
            let s = DatabaseSchema::from_file(f).unwrap();
            assert_eq!(s.name, name);
            assert!(s.tables.len() > 10);
        }
        let vs = DatabaseSchema::from_file("/usr/share/openvswitch/vswitch.ovsschema").unwrap();
        let t = &vs.table("Bridge").unwrap().column("ports").unwrap().ty;
        assert_eq!(t.key.ref_table.as_deref(), Some("Port"));
        assert_eq!(t.max, None);
        assert!(DatabaseSchema::from_json(&serde_json::json!({"name": "x"})).is_err());
        assert!(
            DatabaseSchema::from_json(&serde_json::json!({"name": "x", "tables": {"T": {"columns": {"c": {"type": "float"}}}}})).is_err()
        );
    }

    #[test]
    fn checks() {
        let s = nb();
        let mut ok = Row::new().with("name", "p1").with("tag_request", 7).with("external_ids", Datum::empty_set());
        s.check_row("Logical_Switch_Port", &mut ok, false).unwrap();
        assert!(ok.get("external_ids").unwrap().is_map());
        let e = s.check_row("Logical_Switch_Port", &mut Row::new().with("tag_request", 5000), false).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("Logical_Switch_Port") && m.contains("tag_request") && m.contains("5000") && m.contains("maximum"), "{m}");
        let e = s.check_row("ACL", &mut Row::new().with("action", "permit"), false).unwrap_err();
        assert!(e.to_string().contains("allowed values"), "{e}");
        let e = s.check_row("Logical_Switch_Port", &mut Row::new().with("name", 3), false).unwrap_err();
        assert!(e.to_string().contains("expected string, got integer"), "{e}");
        let e = s.check_row("Logical_Switch_Port", &mut Row::new().with("nope", 3), false).unwrap_err();
        assert!(e.to_string().contains("no column"), "{e}");
        let e = s.check_row("Nope", &mut Row::new(), false).unwrap_err();
        assert!(e.to_string().contains("no table"), "{e}");
        let e = s.check_row("Logical_Switch_Port", &mut Row::new().with("tag_request", Datum::set([1, 2])), false).unwrap_err();
        assert!(e.to_string().contains("maximum is 1"), "{e}");
        let e = s.check_row("Logical_Switch_Port", &mut Row::new().with("dhcpv4_options", "x"), false).unwrap_err();
        assert!(e.to_string().contains("expected uuid"), "{e}");
        let mut c = Datum::atom("p1");
        s.check_condition("Logical_Switch_Port", "name", "==", &mut c).unwrap();
        assert!(s.check_condition("Logical_Switch_Port", "name", "<", &mut c).is_err());
        let mut m = Datum::map([("k", "v")]);
        s.check_mutation("Logical_Switch_Port", "external_ids", "insert", &mut m).unwrap();
        let mut keys = Datum::set(["k"]);
        s.check_mutation("Logical_Switch_Port", "external_ids", "delete", &mut keys).unwrap();
    }
}
