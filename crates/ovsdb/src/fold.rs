//! Folding of set mutations inside one transaction.
//!
//! A transaction that adds many new rows to the same row's set column (`insert` a port, then
//! `mutate Logical_Switch ports insert` that port, once per port) is sent with one mutation per
//! target row and column, as the Python IDL and ovn-nbctl send it: ovsdb-server then copies the
//! target row's set once instead of once per element. The caller still gets one result per
//! operation it wrote (a folded mutation shares the result of the one it was folded into), and a
//! failing operation is reported at the first of the operations folded into it.
//!
//! Only what cannot change the outcome is folded: `insert`/`delete` mutations of a set (not map)
//! column on a row named by `_uuid ==`, into an earlier mutation of the same row, column and mutator,
//! when nothing in between may read or change that column of that row (only inserts, comments,
//! operations on other rows named by `_uuid`, and waits on other columns may stand between).

use std::collections::HashMap;

use crate::datum::{Atom, Datum, Uuid};
use crate::error::Error;
use crate::ops::{Condition, Function, Mutation, OpResult, Operation};

/// The operations to send, and for each operation of the caller the index of the sent operation
/// whose result is its result (`None`: nothing was folded, the indexes are the same).
pub(crate) struct Folded {
    pub ops: Vec<Operation>,
    pub map: Option<Vec<usize>>,
}

/// `_uuid == X`, the only condition: the row it names.
fn single_row(conditions: &[Condition]) -> Option<Uuid> {
    match conditions {
        [Condition::Compare { column, function: Function::Eq, value }] if column == "_uuid" => value.as_uuid(),
        _ => None,
    }
}

/// (row, column, mutator) of a foldable set mutation.
fn foldable(op: &Operation) -> Option<(&str, Uuid, &str, &'static str)> {
    let Operation::Mutate { table, conditions, mutations } = op else { return None };
    let [Mutation { column, mutator, value }] = mutations.as_slice() else { return None };
    if !matches!(*mutator, "insert" | "delete") || value.is_map() || value.as_set().is_none() {
        return None;
    }
    Some((table.as_str(), single_row(conditions.conditions())?, column.as_str(), mutator))
}

/// What an operation may read or change, as far as folding is concerned.
enum Reach<'a> {
    /// No existing row (an insert, a comment).
    Nothing,
    /// One row named by `_uuid`; only `columns` of it when given (a wait reads just those).
    Row { table: &'a str, row: Uuid, columns: Option<&'a [String]> },
    /// Possibly any row.
    Any,
}

fn reach(op: &Operation) -> Reach<'_> {
    match op {
        Operation::Insert { .. } | Operation::Comment(_) => Reach::Nothing,
        Operation::Mutate { table, conditions, .. }
        | Operation::Update { table, conditions, .. }
        | Operation::Delete { table, conditions } => match single_row(conditions.conditions()) {
            Some(row) => Reach::Row { table, row, columns: None },
            None => Reach::Any,
        },
        Operation::Wait { table, conditions, columns, .. } if !columns.is_empty() => match single_row(conditions) {
            Some(row) => Reach::Row { table, row, columns: Some(columns) },
            None => Reach::Any,
        },
        _ => Reach::Any,
    }
}

pub(crate) fn fold(ops: Vec<Operation>) -> Folded {
    // Open groups: (table, row, column, mutator) -> (index in `out`, atoms folded in).
    type Key = (String, Uuid, String, &'static str);
    let mut open: HashMap<Key, usize> = HashMap::new();
    let mut extra: HashMap<usize, Vec<Atom>> = HashMap::new();
    let mut out: Vec<Operation> = Vec::with_capacity(ops.len());
    let mut map: Vec<usize> = Vec::with_capacity(ops.len());
    for op in ops {
        if let Some((table, row, column, mutator)) = foldable(&op) {
            let key: Key = (table.to_string(), row, column.to_string(), mutator);
            if let Some(&at) = open.get(&key) {
                if let Operation::Mutate { mutations, .. } = &op {
                    extra.entry(at).or_default().extend(mutations[0].value.as_set().unwrap_or(&[]).iter().cloned());
                }
                map.push(at);
                continue;
            }
            // Another mutation of this row ends its other groups (their order matters).
            open.retain(|k, _| !(k.0 == key.0 && k.1 == row));
            open.insert(key, out.len());
        } else {
            match reach(&op) {
                Reach::Nothing => {}
                Reach::Row { table, row, columns } => {
                    open.retain(|k, _| !(k.0 == table && k.1 == row && columns.is_none_or(|c| c.contains(&k.2))))
                }
                Reach::Any => open.clear(),
            }
        }
        map.push(out.len());
        out.push(op);
    }
    if extra.is_empty() {
        return Folded { ops: out, map: None };
    }
    for (at, atoms) in extra {
        if let Operation::Mutate { mutations, .. } = &mut out[at] {
            let m = &mut mutations[0];
            let mut all: Vec<Atom> = m.value.as_set().unwrap_or(&[]).to_vec();
            all.extend(atoms);
            m.value = Datum::set(all);
        }
    }
    Folded { ops: out, map: Some(map) }
}

impl Folded {
    /// The caller's results from the results of the sent operations.
    pub fn results(&self, sent: Vec<OpResult>) -> Vec<OpResult> {
        match &self.map {
            None => sent,
            Some(map) => map.iter().map(|&i| sent[i].clone()).collect(),
        }
    }
    /// A transaction error's operation index in the caller's terms.
    pub fn error(&self, e: Error) -> Error {
        match (e, &self.map) {
            (Error::Transaction(mut t), Some(map)) => {
                t.index = t.index.and_then(|i| map.iter().position(|&m| m == i));
                Error::Transaction(t)
            }
            (e, _) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Where;

    fn u(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }
    fn add(row: Uuid, name: &str) -> Operation {
        Operation::mutate("LS", Where::uuid(row)).mutation(Mutation::insert("ports", Datum::named_uuid(name)))
    }
    fn del(row: Uuid, name: &str) -> Operation {
        Operation::mutate("LS", Where::uuid(row)).mutation(Mutation::delete("ports", Datum::named_uuid(name)))
    }
    fn ins(name: &str) -> Operation {
        Operation::insert("LSP").set("name", name).uuid_name(name)
    }
    fn set_of(op: &Operation) -> Vec<String> {
        let Operation::Mutate { mutations, .. } = op else { panic!("{op:?}") };
        mutations[0].value.as_set().unwrap().iter().map(|a| format!("{a:?}")).collect()
    }

    #[test]
    fn per_port_mutations_fold_per_switch() {
        let (s1, s2) = (u(1), u(2));
        let ops = vec![ins("p0"), add(s1, "p0"), ins("p1"), add(s2, "p1"), ins("p2"), add(s1, "p2"), ins("p3"), add(s2, "p3")];
        let f = fold(ops);
        assert_eq!(f.ops.len(), 6);
        assert_eq!(f.map.as_deref(), Some(&[0, 1, 2, 3, 4, 1, 5, 3][..]));
        assert_eq!(set_of(&f.ops[1]).len(), 2);
        assert_eq!(set_of(&f.ops[3]).len(), 2);
        let sent: Vec<OpResult> = (0..6).map(|i| OpResult { uuid: None, rows: None, count: Some(i) }).collect();
        let r = f.results(sent);
        assert_eq!(r.iter().map(|r| r.count.unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 1, 5, 3]);
    }

    #[test]
    fn order_sensitive_sequences_are_kept() {
        let s = u(1);
        // insert p, delete p, insert p: folding the last insert into the first would lose p.
        let f = fold(vec![add(s, "p"), del(s, "p"), add(s, "p")]);
        assert_eq!(f.ops.len(), 3);
        assert!(f.map.is_none());
        // A select (or any op on unknown rows) in between ends every group.
        let f = fold(vec![add(s, "a"), Operation::select("LS"), add(s, "b")]);
        assert_eq!(f.ops.len(), 3);
        // An update of the same row ends its groups; one of another row does not.
        let f = fold(vec![add(s, "a"), Operation::update("LS", Where::uuid(s)).set("name", "x"), add(s, "b")]);
        assert_eq!(f.ops.len(), 3);
        let f = fold(vec![add(s, "a"), Operation::update("LS", Where::uuid(u(9))).set("name", "x"), add(s, "b")]);
        assert_eq!(f.ops.len(), 2);
        // A wait on the row's other columns (the controller's guard on the switch name) does not
        // stop folding; a wait on the mutated column does.
        let wait = |cols: &[&str]| Operation::wait("LS").filter(Condition::uuid(s)).columns(cols.iter().copied()).timeout_ms(0);
        assert_eq!(fold(vec![add(s, "a"), wait(&["name"]), add(s, "b")]).ops.len(), 2);
        assert_eq!(fold(vec![add(s, "a"), wait(&["ports"]), add(s, "b")]).ops.len(), 3);
        // Rows named otherwise than by _uuid, and map columns, are never folded.
        let by_name = || Operation::mutate("LS", Where::eq("name", "n")).mutation(Mutation::insert("ports", Datum::named_uuid("x")));
        assert_eq!(fold(vec![by_name(), by_name()]).ops.len(), 2);
        let map = |k: &str| Operation::mutate("LS", Where::uuid(s)).mutation(Mutation::insert("external_ids", Datum::map([(k, "v")])));
        assert_eq!(fold(vec![map("a"), map("b")]).ops.len(), 2);
    }

    #[test]
    fn errors_point_at_the_callers_operation() {
        let s = u(1);
        let f = fold(vec![ins("a"), add(s, "a"), ins("b"), add(s, "b")]);
        let e = f.error(Error::Transaction(crate::TxnError { index: Some(2), op: None, error: "x".into(), details: None }));
        let Error::Transaction(t) = e else { panic!() };
        assert_eq!(t.index, Some(2));
        let e = f.error(Error::Transaction(crate::TxnError { index: Some(1), op: None, error: "x".into(), details: None }));
        let Error::Transaction(t) = e else { panic!() };
        assert_eq!(t.index, Some(1));
    }
}
