//! JSONPatch (RFC 6902) operations the webhook adds to pods.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use model::env::EnvVar;

/// One JSONPatch operation (the webhook only adds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    /// Always `add`.
    pub op: &'static str,
    /// JSON pointer.
    pub path: String,
    /// Value to add.
    pub value: Value,
}

fn add(path: String, value: Value) -> PatchOp {
    PatchOp { op: "add", path, value }
}

/// Escape one JSON pointer token (RFC 6901): `~` -> `~0`, `/` -> `~1`.
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Operations adding `vars` to every container and init container of `pod`. A variable a
/// container already defines is left alone (the user's value wins; re-invocation is a no-op).
pub fn env_ops(pod: &Value, vars: &[EnvVar]) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    if vars.is_empty() {
        return ops;
    }
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array) else { continue };
        for (i, c) in containers.iter().enumerate() {
            let base = format!("/spec/{list}/{i}/env");
            match c.get("env") {
                None | Some(Value::Null) => {
                    let all: Vec<Value> = vars.iter().map(|v| json!({"name": v.name, "value": v.value})).collect();
                    ops.push(add(base, Value::Array(all)));
                }
                Some(Value::Array(existing)) => {
                    let have: BTreeSet<&str> = existing.iter().filter_map(|e| e.get("name").and_then(Value::as_str)).collect();
                    for v in vars.iter().filter(|v| !have.contains(v.name.as_str())) {
                        ops.push(add(format!("{base}/-"), json!({"name": v.name, "value": v.value})));
                    }
                }
                Some(_) => tracing::warn!(container = i, "container env is not a list; not injecting"),
            }
        }
    }
    ops
}

/// Operations requesting one of each extended resource on the first container, in both
/// `requests` and `limits` (extended resources need both). Existing entries are left alone.
pub fn resource_ops(pod: &Value, resources: &BTreeSet<String>) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    if resources.is_empty() {
        return ops;
    }
    let Some(first) = pod.pointer("/spec/containers/0") else { return ops };
    let one = |names: &mut dyn Iterator<Item = &String>| -> Value {
        Value::Object(names.map(|r| (r.clone(), Value::String("1".into()))).collect())
    };
    let base = "/spec/containers/0/resources";
    match first.get("resources") {
        None | Some(Value::Null) => {
            ops.push(add(base.into(), json!({"requests": one(&mut resources.iter()), "limits": one(&mut resources.iter())})));
        }
        Some(existing) => {
            for section in ["requests", "limits"] {
                match existing.get(section) {
                    None | Some(Value::Null) => ops.push(add(format!("{base}/{section}"), one(&mut resources.iter()))),
                    Some(Value::Object(m)) => {
                        for r in resources.iter().filter(|r| !m.contains_key(r.as_str())) {
                            ops.push(add(format!("{base}/{section}/{}", escape_pointer_token(r)), Value::String("1".into())));
                        }
                    }
                    Some(_) => tracing::warn!(section, "container resources section is not an object; not adding"),
                }
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_pointer_token("kubetron.io/phys"), "kubetron.io~1phys");
        assert_eq!(escape_pointer_token("a~b/c"), "a~0b~1c");
    }

    #[test]
    fn env_skips_existing_names() {
        let pod = json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "user"}]}]}});
        let vars = vec![EnvVar { name: "X".into(), value: "net1".into() }, EnvVar { name: "Y".into(), value: "net2".into() }];
        let ops = env_ops(&pod, &vars);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].path, "/spec/containers/0/env/-");
        assert_eq!(ops[0].value["name"], "Y");
    }

    #[test]
    fn resources_partial() {
        let pod = json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "kubetron.io/p": "1"}}}]}});
        let set: BTreeSet<String> = ["kubetron.io/p".to_string()].into();
        let ops = resource_ops(&pod, &set);
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(ops[0].path, "/spec/containers/0/resources/requests");
        assert_eq!(ops[0].value, json!({"kubetron.io/p": "1"}));
        assert!(resource_ops(&json!({"spec": {"containers": []}}), &set).is_empty());
    }
}
