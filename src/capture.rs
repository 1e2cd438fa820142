//! Values a step captured from an answer (`capture:` in an experiment's
//! flow or a contract's trigger), filled into later steps as `${NAME}`.
//! One filler for chaos flows and contract triggers, so `${…}` means the
//! same everywhere.

use std::collections::BTreeMap;

use serde_json::Value;

/// Values captured by earlier steps, by name.
pub type Captured = BTreeMap<String, Value>;

/// `text` with every `${NAME}` replaced by its captured value (a string
/// without its quotes); an error names a value no step captured.
pub fn fill_text(text: &str, values: &Captured) -> Result<String, String> {
    let mut filled = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').map(|end| start + end).ok_or_else(|| format!("`{text}`: `${{` without a closing `}}`"))?;
        let name = &rest[start + 2..end];
        let value = values.get(name).ok_or_else(|| unknown_value(name, values))?;
        filled.push_str(&rest[..start]);
        filled.push_str(value.as_str().map_or_else(|| value.to_string(), str::to_string).as_str());
        rest = &rest[end + 1..];
    }
    filled.push_str(rest);
    Ok(filled)
}

/// `doc` with captured values filled in: a string that is just `${NAME}`
/// becomes the value itself (a captured number stays a number, as a JSON
/// field must), others as [`fill_text`].
pub fn fill_value(doc: &Value, values: &Captured) -> Result<Value, String> {
    Ok(match doc {
        Value::String(text) => match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')).filter(|name| !name.contains('}')) {
            Some(name) => values.get(name).cloned().ok_or_else(|| unknown_value(name, values))?,
            None => Value::String(fill_text(text, values)?),
        },
        Value::Array(items) => Value::Array(items.iter().map(|item| fill_value(item, values)).collect::<Result<_, _>>()?),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| Ok((k.clone(), fill_value(v, values)?))).collect::<Result<_, String>>()?),
        other => other.clone(),
    })
}

fn unknown_value(name: &str, values: &Captured) -> String {
    let known: Vec<&str> = values.keys().map(String::as_str).collect();
    format!("`${{{name}}}` names no value an earlier step captured (captured: {})", if known.is_empty() { "none".into() } else { known.join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_text_and_keeps_json_types() {
        let values = Captured::from([("orderId".to_string(), json!(42)), ("name".to_string(), json!("Han"))]);
        assert_eq!(fill_text("/mypages/${orderId}", &values).unwrap(), "/mypages/42");
        assert_eq!(fill_text("${name} ordered ${orderId}", &values).unwrap(), "Han ordered 42");
        let body = fill_value(&json!({"id": "${orderId}", "who": "${name}", "note": "order ${orderId}", "n": [1, "${orderId}"]}), &values).unwrap();
        assert_eq!(body, json!({"id": 42, "who": "Han", "note": "order 42", "n": [1, 42]}));
    }

    #[test]
    fn a_value_no_step_captured_is_named() {
        let values = Captured::from([("orderId".to_string(), json!(42))]);
        let err = fill_text("/x/${nope}", &values).unwrap_err();
        assert!(err.contains("nope") && err.contains("orderId"), "{err}");
        assert!(fill_text("/x/${open", &values).unwrap_err().contains("without a closing"));
        assert!(fill_value(&json!("${nope}"), &Captured::new()).unwrap_err().contains("captured: none"));
    }
}
