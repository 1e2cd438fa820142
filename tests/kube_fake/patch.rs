//! The API server's patch semantics: JSON merge patch (RFC 7386) and the
//! strategic merge patch subset Deployments use — lists of named objects
//! (containers, env, ports, volumes, volumeMounts) merge by `name`,
//! `$patch: delete` removes an entry, `null` removes a field.

use serde_json::{Map, Value};

/// RFC 7386: objects merge, `null` deletes, everything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Keys whose lists merge by `name` in a strategic merge patch.
const NAMED_LISTS: &[&str] = &["containers", "initContainers", "env", "ports", "volumes", "volumeMounts"];

/// Strategic merge patch.
pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Array(items) if NAMED_LISTS.contains(&key.as_str()) => {
                let list = target.entry(key.clone()).or_insert(Value::Array(vec![]));
                merge_named(list, items);
            }
            _ => strategic(target.entry(key.clone()).or_insert(Value::Null), value),
        }
    }
}

fn merge_named(list: &mut Value, items: &[Value]) {
    if !list.is_array() {
        *list = Value::Array(vec![]);
    }
    let list = list.as_array_mut().expect("just made an array");
    for item in items {
        let name = item["name"].clone();
        let position = list.iter().position(|e| e["name"] == name);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut list[i], item),
            (None, false) => list.push(item.clone()),
        }
    }
}
