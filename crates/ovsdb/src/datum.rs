//! OVSDB atoms and datums, with their RFC 7047 JSON encoding.
//!
//! A [`Datum`] is always kept canonical: a set is sorted and free of duplicates, a map is sorted by
//! key with unique keys, and a set of exactly one element is stored inline (no allocation). It
//! serializes as ovsdb-server does: a one-element set as the bare atom, other sets as
//! `["set",[...]]`, maps as `["map",[[k,v],...]]`, UUIDs as `["uuid","..."]` and
//! `["named-uuid","..."]`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
pub use uuid::Uuid;

/// One OVSDB atomic value.
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    /// A `named-uuid` reference to a row inserted earlier in the same transaction.
    NamedUuid(String),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Atom::Real(r) => Some(*r),
            Atom::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }
    /// The name of the atom's type, as in a schema (`named-uuid` reports `uuid`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Atom::Integer(_) => "integer",
            Atom::Real(_) => "real",
            Atom::Boolean(_) => "boolean",
            Atom::String(_) => "string",
            Atom::Uuid(_) | Atom::NamedUuid(_) => "uuid",
        }
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl std::hash::Hash for Atom {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Atom::Integer(i) => i.hash(state),
            Atom::Real(r) => r.to_bits().hash(state),
            Atom::Boolean(b) => b.hash(state),
            Atom::String(s) => s.hash(state),
            Atom::Uuid(u) => u.hash(state),
            Atom::NamedUuid(s) => s.hash(state),
        }
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Self {
        Atom::String(s.to_string())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Self {
        Atom::String(s)
    }
}
impl From<&String> for Atom {
    fn from(s: &String) -> Self {
        Atom::String(s.clone())
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Self {
        Atom::Integer(i)
    }
}
impl From<i32> for Atom {
    fn from(i: i32) -> Self {
        Atom::Integer(i as i64)
    }
}
impl From<u32> for Atom {
    fn from(i: u32) -> Self {
        Atom::Integer(i as i64)
    }
}
impl From<u16> for Atom {
    fn from(i: u16) -> Self {
        Atom::Integer(i as i64)
    }
}
impl From<f64> for Atom {
    fn from(r: f64) -> Self {
        Atom::Real(r)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Self {
        Atom::Boolean(b)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Self {
        Atom::Uuid(u)
    }
}

impl Serialize for Atom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Atom::Integer(i) => s.serialize_i64(*i),
            Atom::Real(r) => s.serialize_f64(*r),
            Atom::Boolean(b) => s.serialize_bool(*b),
            Atom::String(v) => s.serialize_str(v),
            Atom::Uuid(u) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element("uuid")?;
                seq.serialize_element(u.as_hyphenated().encode_lower(&mut Uuid::encode_buffer()) as &str)?;
                seq.end()
            }
            Atom::NamedUuid(n) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element("named-uuid")?;
                seq.serialize_element(n)?;
                seq.end()
            }
        }
    }
}

/// Parses a `["uuid", "..."]` / `["named-uuid", "..."]` pair after its tag was read.
fn uuid_pair<'de, A: SeqAccess<'de>>(tag: &str, seq: &mut A) -> Result<Atom, A::Error> {
    let v: std::borrow::Cow<'de, str> =
        seq.next_element::<CowStr<'de>>()?.map(|c| c.0).ok_or_else(|| de::Error::custom(format!("[\"{tag}\"] without a value")))?;
    let atom = if tag == "uuid" {
        Atom::Uuid(Uuid::parse_str(&v).map_err(|e| de::Error::custom(format!("bad uuid {v:?}: {e}")))?)
    } else {
        Atom::NamedUuid(v.into_owned())
    };
    if seq.next_element::<de::IgnoredAny>()?.is_some() {
        return Err(de::Error::custom(format!("[\"{tag}\", ...] with more than one value")));
    }
    Ok(atom)
}

struct CowStr<'a>(std::borrow::Cow<'a, str>);
impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct AtomVisitor;
impl<'de> Visitor<'de> for AtomVisitor {
    type Value = Atom;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OVSDB atom")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Atom, E> {
        Ok(Atom::Boolean(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Atom, E> {
        Ok(Atom::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Atom, E> {
        i64::try_from(v).map(Atom::Integer).map_err(|_| E::custom(format!("integer {v} out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Atom, E> {
        Ok(Atom::Real(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Atom, E> {
        Ok(Atom::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Atom, E> {
        Ok(Atom::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Atom, A::Error> {
        let tag: CowStr = seq.next_element()?.ok_or_else(|| de::Error::custom("empty array is not an atom"))?;
        match &*tag.0 {
            t @ ("uuid" | "named-uuid") => uuid_pair(t, &mut seq),
            other => Err(de::Error::custom(format!("[{other:?}, ...] is not an atom"))),
        }
    }
}

impl<'de> Deserialize<'de> for Atom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AtomVisitor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    One(Atom),
    /// Sorted, unique, never exactly one element.
    Set(Vec<Atom>),
    /// Sorted by key, unique keys.
    Map(Vec<(Atom, Atom)>),
}

/// An OVSDB datum: a set of atoms (a scalar is a set of one) or a map.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Datum(Repr);

impl Default for Datum {
    fn default() -> Self {
        Datum::empty_set()
    }
}

fn sort_dedup_set(mut v: Vec<Atom>) -> Vec<Atom> {
    if !v.windows(2).all(|w| w[0] < w[1]) {
        v.sort();
        v.dedup();
    }
    v
}

impl Datum {
    pub fn atom(a: impl Into<Atom>) -> Datum {
        Datum(Repr::One(a.into()))
    }
    pub fn empty_set() -> Datum {
        Datum(Repr::Set(Vec::new()))
    }
    pub fn empty_map() -> Datum {
        Datum(Repr::Map(Vec::new()))
    }
    /// A set: sorted and deduplicated.
    pub fn set<A: Into<Atom>>(items: impl IntoIterator<Item = A>) -> Datum {
        Self::from_set_vec(items.into_iter().map(Into::into).collect())
    }
    fn from_set_vec(v: Vec<Atom>) -> Datum {
        let mut v = sort_dedup_set(v);
        if v.len() == 1 {
            Datum(Repr::One(v.pop().expect("len 1")))
        } else {
            v.shrink_to_fit();
            Datum(Repr::Set(v))
        }
    }
    /// A map: sorted by key; for a duplicated key the last value wins.
    pub fn map<K: Into<Atom>, V: Into<Atom>>(items: impl IntoIterator<Item = (K, V)>) -> Datum {
        Self::from_map_vec(items.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
    fn from_map_vec(mut v: Vec<(Atom, Atom)>) -> Datum {
        if !v.windows(2).all(|w| w[0].0 < w[1].0) {
            // Stable sort keeps insertion order among equal keys; keep the last one.
            v.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out: Vec<(Atom, Atom)> = Vec::with_capacity(v.len());
            for kv in v {
                match out.last_mut() {
                    Some(last) if last.0 == kv.0 => *last = kv,
                    _ => out.push(kv),
                }
            }
            v = out;
        }
        v.shrink_to_fit();
        Datum(Repr::Map(v))
    }
    /// An optional value: `None` is the empty set.
    pub fn optional<A: Into<Atom>>(a: Option<A>) -> Datum {
        match a {
            Some(a) => Datum::atom(a),
            None => Datum::empty_set(),
        }
    }
    pub fn uuid(u: Uuid) -> Datum {
        Datum::atom(Atom::Uuid(u))
    }
    pub fn named_uuid(name: impl Into<String>) -> Datum {
        Datum::atom(Atom::NamedUuid(name.into()))
    }

    pub fn is_map(&self) -> bool {
        matches!(self.0, Repr::Map(_))
    }
    /// Number of elements (set members or map pairs).
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(_) => 1,
            Repr::Set(v) => v.len(),
            Repr::Map(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The elements of a set (a scalar is a set of one); `None` for a non-empty map.
    pub fn as_set(&self) -> Option<&[Atom]> {
        match &self.0 {
            Repr::One(a) => Some(std::slice::from_ref(a)),
            Repr::Set(v) => Some(v),
            Repr::Map(v) if v.is_empty() => Some(&[]),
            Repr::Map(_) => None,
        }
    }
    /// The pairs of a map; an empty set counts as an empty map.
    pub fn as_map(&self) -> Option<&[(Atom, Atom)]> {
        match &self.0 {
            Repr::Map(v) => Some(v),
            Repr::Set(v) if v.is_empty() => Some(&[]),
            _ => None,
        }
    }
    /// The single atom of a one-element set.
    pub fn as_atom(&self) -> Option<&Atom> {
        match &self.0 {
            Repr::One(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        self.as_atom().and_then(Atom::as_str)
    }
    pub fn as_i64(&self) -> Option<i64> {
        self.as_atom().and_then(Atom::as_i64)
    }
    pub fn as_f64(&self) -> Option<f64> {
        self.as_atom().and_then(Atom::as_f64)
    }
    pub fn as_bool(&self) -> Option<bool> {
        self.as_atom().and_then(Atom::as_bool)
    }
    pub fn as_uuid(&self) -> Option<Uuid> {
        self.as_atom().and_then(Atom::as_uuid)
    }
    /// Iterate over set elements (nothing for a map).
    pub fn iter(&self) -> impl Iterator<Item = &Atom> {
        self.as_set().unwrap_or(&[]).iter()
    }
    /// Whether a set contains `a`.
    pub fn contains(&self, a: &Atom) -> bool {
        self.as_set().is_some_and(|s| s.binary_search(a).is_ok())
    }
    /// Look up a map value by key.
    pub fn get(&self, key: &Atom) -> Option<&Atom> {
        let m = self.as_map()?;
        m.binary_search_by(|(k, _)| k.cmp(key)).ok().map(|i| &m[i].1)
    }
    /// Look up a string-keyed map value that is a string (e.g. `external_ids`).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        let m = self.as_map()?;
        m.binary_search_by(|(k, _)| match k {
            Atom::String(s) => s.as_bytes().cmp(key.as_bytes()),
            other => other.rank().cmp(&3),
        })
        .ok()
        .and_then(|i| m[i].1.as_str())
    }

    /// Converts an empty set into an empty map (used when the column type is a map).
    pub(crate) fn coerce_empty_map(&mut self) {
        if let Repr::Set(v) = &self.0 {
            if v.is_empty() {
                self.0 = Repr::Map(Vec::new());
            }
        }
    }

    /// Applies `f` to every atom in place (keys and values), then restores canonical order.
    pub(crate) fn map_atoms(&mut self, mut fk: impl FnMut(&mut Atom), mut fv: impl FnMut(&mut Atom)) {
        match &mut self.0 {
            Repr::One(a) => fk(a),
            Repr::Set(v) => {
                v.iter_mut().for_each(&mut fk);
                let taken = std::mem::take(v);
                *self = Datum::from_set_vec(taken);
            }
            Repr::Map(v) => {
                for (k, val) in v.iter_mut() {
                    fk(k);
                    fv(val);
                }
                let taken = std::mem::take(v);
                *self = Datum::from_map_vec(taken);
            }
        }
    }

    /// Applies an update2 "modify" diff to this value. `scalar` is true for columns whose type
    /// has exactly one element (min = max = 1, not a map): the diff is then the new value.
    /// Otherwise a set diff toggles membership and a map diff adds missing keys, removes keys
    /// whose value matches and replaces the value of keys whose value differs.
    pub fn apply_diff(&mut self, diff: &Datum, scalar: bool) {
        if scalar {
            *self = diff.clone();
            return;
        }
        if let (Some(old), Some(d)) = (self.as_map(), diff.as_map()) {
            if self.is_map() || diff.is_map() {
                let mut out = Vec::with_capacity(old.len() + d.len());
                let (mut i, mut j) = (0, 0);
                while i < old.len() || j < d.len() {
                    if j == d.len() || (i < old.len() && old[i].0 < d[j].0) {
                        out.push(old[i].clone());
                        i += 1;
                    } else if i == old.len() || d[j].0 < old[i].0 {
                        out.push(d[j].clone());
                        j += 1;
                    } else {
                        if old[i].1 != d[j].1 {
                            out.push(d[j].clone());
                        }
                        i += 1;
                        j += 1;
                    }
                }
                self.0 = Repr::Map(out);
                return;
            }
        }
        let old = self.as_set().unwrap_or(&[]);
        let d = diff.as_set().unwrap_or(&[]);
        let mut out = Vec::with_capacity(old.len() + d.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < d.len() {
            if j == d.len() || (i < old.len() && old[i] < d[j]) {
                out.push(old[i].clone());
                i += 1;
            } else if i == old.len() || d[j] < old[i] {
                out.push(d[j].clone());
                j += 1;
            } else {
                i += 1;
                j += 1;
            }
        }
        *self = Datum::from_set_vec(out);
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl<A: Into<Atom>> From<A> for Datum {
    fn from(a: A) -> Self {
        Datum::atom(a)
    }
}

impl Serialize for Datum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Pairs<'a>(&'a [(Atom, Atom)]);
        impl Serialize for Pairs<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    seq.serialize_element(&(k, v))?;
                }
                seq.end()
            }
        }
        match &self.0 {
            Repr::One(a) => a.serialize(s),
            Repr::Set(v) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element("set")?;
                seq.serialize_element(v)?;
                seq.end()
            }
            Repr::Map(v) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element("map")?;
                seq.serialize_element(&Pairs(v))?;
                seq.end()
            }
        }
    }
}

struct PairVisitor;
impl<'de> Visitor<'de> for PairVisitor {
    type Value = (Atom, Atom);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [key, value] pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let k: Atom = seq.next_element()?.ok_or_else(|| de::Error::custom("map pair without key"))?;
        let v: Atom = seq.next_element()?.ok_or_else(|| de::Error::custom("map pair without value"))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("map pair with more than two elements"));
        }
        Ok((k, v))
    }
}
struct Pair((Atom, Atom));
impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(PairVisitor).map(Pair)
    }
}

struct DatumVisitor;
impl<'de> Visitor<'de> for DatumVisitor {
    type Value = Datum;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OVSDB datum")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Datum, E> {
        Ok(Datum::atom(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Datum, E> {
        Ok(Datum::atom(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Datum, E> {
        AtomVisitor.visit_u64(v).map(Datum::atom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Datum, E> {
        Ok(Datum::atom(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Datum, E> {
        Ok(Datum::atom(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Datum, E> {
        Ok(Datum::atom(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Datum, A::Error> {
        let tag: CowStr = seq.next_element()?.ok_or_else(|| de::Error::custom("empty array is not a datum"))?;
        let d = match &*tag.0 {
            t @ ("uuid" | "named-uuid") => return uuid_pair(t, &mut seq).map(Datum::atom),
            "set" => {
                let v: Vec<Atom> = seq.next_element()?.ok_or_else(|| de::Error::custom("[\"set\"] without elements"))?;
                Datum::from_set_vec(v)
            }
            "map" => {
                let v: Vec<Pair> = seq.next_element()?.ok_or_else(|| de::Error::custom("[\"map\"] without pairs"))?;
                Datum::from_map_vec(v.into_iter().map(|p| p.0).collect())
            }
            other => return Err(de::Error::custom(format!("[{other:?}, ...] is not a datum"))),
        };
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!("[{:?}, ...] with more than one value", &*tag.0)));
        }
        Ok(d)
    }
}

impl<'de> Deserialize<'de> for Datum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DatumVisitor)
    }
}

/// Interns a column name: every row shares one allocation per distinct name.
pub fn intern(name: &str) -> Arc<str> {
    static TABLE: OnceLock<Mutex<std::collections::HashSet<Arc<str>>>> = OnceLock::new();
    let t = TABLE.get_or_init(Default::default);
    let mut g = t.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(a) = g.get(name) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(name);
    g.insert(a.clone());
    a
}

/// A row: column name to datum, kept sorted by column name. Columns absent from a row read from
/// the server have their default value (empty set/map, 0, "", false).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    cols: Vec<(Arc<str>, Datum)>,
}

impl Row {
    pub fn new() -> Row {
        Row::default()
    }
    /// Builder: sets a column.
    pub fn with(mut self, column: &str, value: impl Into<Datum>) -> Row {
        self.insert(column, value.into());
        self
    }
    /// Sets a column, replacing any previous value.
    pub fn insert(&mut self, column: &str, value: Datum) {
        match self.cols.binary_search_by(|(c, _)| (**c).cmp(column)) {
            Ok(i) => self.cols[i].1 = value,
            Err(i) => self.cols.insert(i, (intern(column), value)),
        }
    }
    pub fn remove(&mut self, column: &str) -> Option<Datum> {
        self.cols.binary_search_by(|(c, _)| (**c).cmp(column)).ok().map(|i| self.cols.remove(i).1)
    }
    pub fn get(&self, column: &str) -> Option<&Datum> {
        self.cols.binary_search_by(|(c, _)| (**c).cmp(column)).ok().map(|i| &self.cols[i].1)
    }
    pub(crate) fn get_mut(&mut self, column: &str) -> Option<&mut Datum> {
        self.cols.binary_search_by(|(c, _)| (**c).cmp(column)).ok().map(|i| &mut self.cols[i].1)
    }
    /// A string column's value ("" if absent).
    pub fn str(&self, column: &str) -> &str {
        self.get(column).and_then(Datum::as_str).unwrap_or("")
    }
    /// An integer column's value.
    pub fn i64(&self, column: &str) -> Option<i64> {
        self.get(column).and_then(Datum::as_i64)
    }
    pub fn bool(&self, column: &str) -> Option<bool> {
        self.get(column).and_then(Datum::as_bool)
    }
    pub fn uuid(&self, column: &str) -> Option<Uuid> {
        self.get(column).and_then(Datum::as_uuid)
    }
    /// A value of a string map column such as `external_ids`.
    pub fn map_str(&self, column: &str, key: &str) -> Option<&str> {
        self.get(column).and_then(|d| d.get_str(key))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Datum)> {
        self.cols.iter().map(|(c, d)| (&**c, d))
    }
    pub fn len(&self) -> usize {
        self.cols.len()
    }
    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }
    pub(crate) fn from_sorted_unchecked(cols: Vec<(Arc<str>, Datum)>) -> Row {
        Row { cols }
    }
    pub(crate) fn cols_mut(&mut self) -> &mut Vec<(Arc<str>, Datum)> {
        &mut self.cols
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.cols.len()))?;
        for (c, d) in &self.cols {
            m.serialize_entry(&**c, d)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut cols = Vec::new();
                while let Some(k) = map.next_key::<CowStr>()? {
                    let v: Datum = map.next_value()?;
                    cols.push((intern(&k.0), v));
                }
                cols.sort_by(|a: &(Arc<str>, Datum), b| a.0.cmp(&b.0));
                cols.dedup_by(|a, b| a.0 == b.0);
                cols.shrink_to_fit();
                Ok(Row { cols })
            }
        }
        d.deserialize_map(V)
    }
}

impl<K: AsRef<str>, V: Into<Datum>> FromIterator<(K, V)> for Row {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut r = Row::new();
        for (k, v) in iter {
            r.insert(k.as_ref(), v.into());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(serde_json::to_string(&Datum::atom("a")).unwrap(), r#""a""#);
        assert_eq!(serde_json::to_string(&Datum::set(["b", "a"])).unwrap(), r#"["set",["a","b"]]"#);
        assert_eq!(serde_json::to_string(&Datum::set(["a"])).unwrap(), r#""a""#);
        assert_eq!(serde_json::to_string(&Datum::empty_set()).unwrap(), r#"["set",[]]"#);
        assert_eq!(serde_json::to_string(&Datum::map([("k", "v")])).unwrap(), r#"["map",[["k","v"]]]"#);
        let u = Uuid::parse_str("36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c").unwrap();
        assert_eq!(serde_json::to_string(&Datum::uuid(u)).unwrap(), r#"["uuid","36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c"]"#);
        assert_eq!(serde_json::to_string(&Datum::named_uuid("x")).unwrap(), r#"["named-uuid","x"]"#);
        let d: Datum = serde_json::from_str(r#"["set",[["uuid","36bf4bd0-9b7c-4b16-bd55-7b1f29ef0f6c"]]]"#).unwrap();
        assert_eq!(d, Datum::uuid(u));
        let d: Datum = serde_json::from_str(r#"["map",[[1,"b"],[0,"a"]]]"#).unwrap();
        assert_eq!(d.get(&Atom::Integer(0)), Some(&Atom::from("a")));
        assert!(serde_json::from_str::<Datum>(r#"["sett",[]]"#).is_err());
        assert!(serde_json::from_str::<Datum>(r#"["uuid","zz"]"#).is_err());
        assert!(serde_json::from_str::<Datum>(r#"{"a":1}"#).is_err());
    }

    #[test]
    fn diffs() {
        let mut s = Datum::set(["a", "b"]);
        s.apply_diff(&Datum::set(["b", "c"]), false);
        assert_eq!(s, Datum::set(["a", "c"]));
        let mut m = Datum::map([("a", "1"), ("b", "2"), ("c", "3")]);
        m.apply_diff(&Datum::map([("a", "1"), ("b", "9"), ("d", "4")]), false);
        assert_eq!(m, Datum::map([("b", "9"), ("c", "3"), ("d", "4")]));
        let mut o = Datum::empty_set();
        o.apply_diff(&Datum::atom(5), false);
        assert_eq!(o, Datum::atom(5));
        o.apply_diff(&Datum::atom(5), false);
        assert_eq!(o, Datum::empty_set());
        let mut sc = Datum::atom("x");
        sc.apply_diff(&Datum::atom("y"), true);
        assert_eq!(sc, Datum::atom("y"));
        let mut em = Datum::empty_set();
        em.apply_diff(&Datum::map([("k", "v")]), false);
        assert_eq!(em.get_str("k"), Some("v"));
    }
}
