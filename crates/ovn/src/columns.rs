//! What a typed model expects of each column it uses, and readers of typed values from a [`Row`].
//!
//! Every model lists its columns with a [`ColumnKind`]; the test `tests/schema.rs` checks each list
//! against the schema file installed on the machine, so a model can never silently drift from the
//! database it is used with.

use std::collections::BTreeMap;

use ovsdb::datum::{Atom, Datum, Row, Uuid};
use ovsdb::schema::{AtomicType, ColumnType};

/// The shape a model expects of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// exactly one string
    String,
    /// zero or one string
    OptionalString,
    /// a set of strings (any size)
    StringSet,
    /// exactly one integer
    Integer,
    /// zero or one integer
    OptionalInteger,
    /// exactly one boolean
    Boolean,
    /// zero or one boolean
    OptionalBoolean,
    /// string -> string map
    StringMap,
    /// zero or one reference to a row of the named table
    OptionalRef(&'static str),
    /// a set of references to rows of the named table
    RefSet(&'static str),
    /// exactly one reference to a row of the named table
    Ref(&'static str),
}

impl ColumnKind {
    /// Whether a schema column type is what this kind expects. Returns the reason when not.
    pub fn matches(&self, ty: &ColumnType) -> Result<(), String> {
        let key = ty.key.atomic;
        let (want_key, want_value, min, max_one) = match self {
            ColumnKind::String => (AtomicType::String, None, Some(1), true),
            ColumnKind::OptionalString => (AtomicType::String, None, Some(0), true),
            ColumnKind::StringSet => (AtomicType::String, None, None, false),
            ColumnKind::Integer => (AtomicType::Integer, None, Some(1), true),
            ColumnKind::OptionalInteger => (AtomicType::Integer, None, Some(0), true),
            ColumnKind::Boolean => (AtomicType::Boolean, None, Some(1), true),
            ColumnKind::OptionalBoolean => (AtomicType::Boolean, None, Some(0), true),
            ColumnKind::StringMap => (AtomicType::String, Some(AtomicType::String), None, false),
            ColumnKind::OptionalRef(_) => (AtomicType::Uuid, None, Some(0), true),
            ColumnKind::RefSet(_) => (AtomicType::Uuid, None, None, false),
            ColumnKind::Ref(_) => (AtomicType::Uuid, None, Some(1), true),
        };
        if key != want_key {
            return Err(format!("key type is {}, model expects {}", key.name(), want_key.name()));
        }
        match (want_value, &ty.value) {
            (None, Some(v)) => return Err(format!("column is a map (value {}), model expects no map", v.atomic.name())),
            (Some(w), None) => return Err(format!("column is not a map, model expects a map to {}", w.name())),
            (Some(w), Some(v)) if v.atomic != w => {
                return Err(format!("map value type is {}, model expects {}", v.atomic.name(), w.name()))
            }
            _ => {}
        }
        if let Some(min) = min {
            if ty.min != min {
                return Err(format!("min is {}, model expects {min}", ty.min));
            }
        }
        let is_one = ty.max == Some(1);
        if max_one != is_one {
            return Err(format!("max is {:?}, model expects {}", ty.max, if max_one { "1" } else { "more than 1" }));
        }
        let want_ref = match self {
            ColumnKind::OptionalRef(t) | ColumnKind::RefSet(t) | ColumnKind::Ref(t) => Some(*t),
            _ => None,
        };
        if let Some(t) = want_ref {
            if ty.key.ref_table.as_deref() != Some(t) {
                return Err(format!("refTable is {:?}, model expects {t}", ty.key.ref_table));
            }
        }
        Ok(())
    }
}

/// One column a model uses.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: ColumnKind,
}

/// A typed model of one table.
pub trait Model: Sized {
    /// The table's name in the schema.
    const TABLE: &'static str;
    /// The columns the model reads and writes (`_uuid` excluded).
    const COLUMNS: &'static [ColumnSpec];
    /// Reads a row as returned by a select or a monitor (missing columns read as their defaults).
    fn from_row(row: &Row) -> Self;
}

pub(crate) const fn col(name: &'static str, kind: ColumnKind) -> ColumnSpec {
    ColumnSpec { name, kind }
}

/// The row's own UUID (`_uuid`), or nil when absent.
pub fn row_uuid(row: &Row) -> Uuid {
    row.uuid("_uuid").unwrap_or_else(Uuid::nil)
}

/// A string -> string map column.
pub fn string_map(row: &Row, column: &str) -> BTreeMap<String, String> {
    row.get(column)
        .and_then(Datum::as_map)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// A set-of-strings column (also a single string, which OVSDB sends bare).
pub fn string_set(row: &Row, column: &str) -> Vec<String> {
    row.get(column).map(|d| d.iter().filter_map(|a| a.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// An optional string column.
pub fn optional_string(row: &Row, column: &str) -> Option<String> {
    row.get(column).and_then(|d| d.iter().next()).and_then(Atom::as_str).map(str::to_string)
}

/// A set-of-UUIDs column.
pub fn uuid_set(row: &Row, column: &str) -> Vec<Uuid> {
    row.get(column).map(|d| d.iter().filter_map(Atom::as_uuid).collect()).unwrap_or_default()
}

/// An optional UUID column.
pub fn optional_uuid(row: &Row, column: &str) -> Option<Uuid> {
    row.get(column).and_then(|d| d.iter().next()).and_then(Atom::as_uuid)
}

/// An optional boolean column.
pub fn optional_bool(row: &Row, column: &str) -> Option<bool> {
    row.get(column).and_then(|d| d.iter().next()).and_then(Atom::as_bool)
}

/// An optional integer column.
pub fn optional_i64(row: &Row, column: &str) -> Option<i64> {
    row.get(column).and_then(|d| d.iter().next()).and_then(Atom::as_i64)
}

/// A string -> string map datum.
pub fn map_datum(m: &BTreeMap<String, String>) -> Datum {
    Datum::map(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// A set-of-strings datum.
pub fn set_datum(s: &[String]) -> Datum {
    Datum::set(s.iter().map(String::as_str))
}

/// Reading one column into a Rust type; the models' fields use it.
pub trait FromColumn: Sized {
    fn read(row: &Row, column: &str) -> Self;
}

impl FromColumn for String {
    fn read(row: &Row, column: &str) -> Self {
        row.str(column).to_string()
    }
}
impl FromColumn for Option<String> {
    fn read(row: &Row, column: &str) -> Self {
        optional_string(row, column)
    }
}
impl FromColumn for Vec<String> {
    fn read(row: &Row, column: &str) -> Self {
        string_set(row, column)
    }
}
impl FromColumn for BTreeMap<String, String> {
    fn read(row: &Row, column: &str) -> Self {
        string_map(row, column)
    }
}
impl FromColumn for Vec<Uuid> {
    fn read(row: &Row, column: &str) -> Self {
        uuid_set(row, column)
    }
}
impl FromColumn for Option<Uuid> {
    fn read(row: &Row, column: &str) -> Self {
        optional_uuid(row, column)
    }
}
impl FromColumn for Uuid {
    fn read(row: &Row, column: &str) -> Self {
        optional_uuid(row, column).unwrap_or_else(Uuid::nil)
    }
}
impl FromColumn for Option<bool> {
    fn read(row: &Row, column: &str) -> Self {
        optional_bool(row, column)
    }
}
impl FromColumn for bool {
    fn read(row: &Row, column: &str) -> Self {
        optional_bool(row, column).unwrap_or(false)
    }
}
impl FromColumn for Option<i64> {
    fn read(row: &Row, column: &str) -> Self {
        optional_i64(row, column)
    }
}
impl FromColumn for i64 {
    fn read(row: &Row, column: &str) -> Self {
        optional_i64(row, column).unwrap_or(0)
    }
}

/// Declares a typed model: the struct (with its row `uuid` first), its column list and its reader.
macro_rules! model {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $table:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $col:literal as $kind:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            /// The row's `_uuid`.
            pub uuid: ovsdb::datum::Uuid,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::columns::Model for $name {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [$crate::columns::ColumnSpec] = &[ $( $crate::columns::col($col, $kind) ),* ];
            fn from_row(row: &ovsdb::datum::Row) -> Self {
                $name {
                    uuid: $crate::columns::row_uuid(row),
                    $( $field: <$ty as $crate::columns::FromColumn>::read(row, $col), )*
                }
            }
        }
    };
}
pub(crate) use model;
