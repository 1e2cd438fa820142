//! siege URL files: one request per line.
//!
//! ```text
//! # comment
//! HOST=127.0.0.1:8088
//! http://$(HOST)/products
//! http://$(HOST)/orders POST {"productId":1,"quantity":2}
//! http://$(HOST)/orders POST </path/to/order.json
//! ${HOST}/products/1 PATCH {"price":5}
//! http://$(HOST)/orders/1 DELETE
//! ```
//!
//! `NAME=value` defines a variable; `$(NAME)` and `${NAME}` expand it (an
//! undefined name falls back to the environment, as siege does). A body
//! `<file` is read from a path relative to the URL file's folder. Any line
//! that is not one of these forms is an error naming `FILE:LINE`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::plan::{Method, Target};

/// A malformed URL file line (or an unreadable file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct UrlFileError {
    /// The file as named by the user (`<command line>` for a URL argument).
    pub file: String,
    /// 1-based line number (0 when the file itself cannot be read).
    pub line: usize,
    /// What was expected.
    pub message: String,
}

/// Reads and parses a siege URL file.
pub fn parse_url_file(path: &Path) -> Result<Vec<Target>, UrlFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| UrlFileError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read the URL file: {e}"),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_url_source(&text, &path.display().to_string(), &base)
}

/// Parses URL file text; `file` names it in errors and `base_dir` resolves `<file` bodies.
pub fn parse_url_source(text: &str, file: &str, base_dir: &Path) -> Result<Vec<Target>, UrlFileError> {
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut targets = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |message: String| UrlFileError { file: file.to_string(), line: i + 1, message };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = variable_definition(line) {
            let value = expand(value.trim(), &vars).map_err(err)?;
            vars.insert(name.to_string(), unquote(&value).to_string());
            continue;
        }
        let expanded = expand(line, &vars).map_err(err)?;
        targets.push(parse_url_line(&expanded, base_dir).map_err(err)?);
    }
    if targets.is_empty() {
        return Err(UrlFileError {
            file: file.to_string(),
            line: text.lines().count(),
            message: "expected at least one URL line".to_string(),
        });
    }
    Ok(targets)
}

/// Parses one expanded line `URL [METHOD [BODY | <FILE]]`.
pub fn parse_url_line(line: &str, base_dir: &Path) -> Result<Target, String> {
    let line = line.trim();
    let (url, rest) = split_token(line);
    if url.is_empty() {
        return Err("expected a URL".to_string());
    }
    let (method_word, body_text) = split_token(rest);
    let method = if method_word.is_empty() {
        Method::GET
    } else {
        parse_method(method_word)?
    };
    let body = if body_text.is_empty() {
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            Some(Bytes::new())
        } else {
            None
        }
    } else if let Some(path) = body_text.strip_prefix('<') {
        let path = path.trim();
        if path.is_empty() {
            return Err("expected a file name after `<`".to_string());
        }
        let full: PathBuf = if Path::new(path).is_absolute() { path.into() } else { base_dir.join(path) };
        let data = std::fs::read(&full)
            .map_err(|e| format!("expected a readable body file `{}`: {e}", full.display()))?;
        Some(Bytes::from(data))
    } else {
        Some(Bytes::copy_from_slice(body_text.as_bytes()))
    };
    let mut target = Target::new(method, url, body)?;
    if let (Some(path), Some(_)) = (body_text.strip_prefix('<'), &target.body)
        && path.trim().ends_with(".json")
    {
        target.content_type = Some("application/json".to_string());
    }
    Ok(target)
}

fn parse_method(word: &str) -> Result<Method, String> {
    const METHODS: [(&str, Method); 7] = [
        ("GET", Method::GET),
        ("POST", Method::POST),
        ("PUT", Method::PUT),
        ("PATCH", Method::PATCH),
        ("DELETE", Method::DELETE),
        ("HEAD", Method::HEAD),
        ("OPTIONS", Method::OPTIONS),
    ];
    METHODS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, m)| m.clone())
        .ok_or_else(|| {
            format!("expected a method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS) after the URL, found `{word}`")
        })
}

fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

/// `NAME=value` where NAME is an identifier (so `http://x/?a=b` is not one).
fn variable_definition(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_') || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((name, value))
}

fn unquote(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// The longest a line may grow by expansion: a body far beyond what any
/// service takes, and a bound on `A=$(A)$(A)` lines, each of which doubles.
const MAX_EXPANDED: usize = 1 << 20;

/// Expands `$(NAME)` and `${NAME}`; unknown names fall back to the environment.
fn expand(s: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let close = match after.chars().next() {
            Some('(') => ')',
            Some('{') => '}',
            _ => {
                out.push('$');
                rest = after;
                continue;
            }
        };
        let end = after
            .find(close)
            .ok_or_else(|| format!("expected `{close}` to close the variable reference in `{s}`"))?;
        let name = &after[1..end];
        if name.is_empty() {
            return Err(format!("expected a variable name inside `${}{}`", &after[..1], close));
        }
        match vars.get(name).cloned().or_else(|| std::env::var(name).ok()) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("expected variable `{name}` to be defined before use")),
        }
        if out.len() > MAX_EXPANDED {
            return Err(format!("expected a line of at most {MAX_EXPANDED} bytes once variables are expanded; this one grows longer than that"));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Target>, UrlFileError> {
        parse_url_source(text, "urls.txt", Path::new("."))
    }

    #[test]
    fn comments_blank_lines_and_plain_get() {
        let t = parse("# header\n\n   # indented comment\nhttp://127.0.0.1:8080/products\n").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].method, Method::GET);
        assert_eq!(t[0].body, None);
        assert_eq!(t[0].route, "GET /products");
    }

    #[test]
    fn variables_both_syntaxes_nested_and_env() {
        // SAFETY: test-only variable name unique to this test.
        unsafe { std::env::set_var("STORMPROOF_TEST_URLFILE_PORT", "9090") };
        let t = parse(
            "HOST=127.0.0.1\nPORT = $(STORMPROOF_TEST_URLFILE_PORT)\nBASE=\"http://$(HOST):${PORT}\"\n$(BASE)/a\n${BASE}/b?x=1&y=$(HOST)\n",
        )
        .unwrap();
        assert_eq!(t[0].url, "http://127.0.0.1:9090/a");
        assert_eq!(t[1].path_and_query, "/b?x=1&y=127.0.0.1");
    }

    #[test]
    fn query_strings_are_not_variable_definitions() {
        let t = parse("http://h/search?q=1\n").unwrap();
        assert_eq!(t[0].path_and_query, "/search?q=1");
    }

    #[test]
    fn inline_bodies_for_post_put_patch_delete() {
        let t = parse(
            "http://h/orders POST {\"productId\": 1, \"quantity\": 2}\nhttp://h/p/1 put name=x&y=2\nhttp://h/p/1 PATCH {\"price\":5}\nhttp://h/p/1 DELETE\nhttp://h/p POST\n",
        )
        .unwrap();
        assert_eq!(t[0].method, Method::POST);
        assert_eq!(t[0].body.as_deref(), Some(&b"{\"productId\": 1, \"quantity\": 2}"[..]));
        assert_eq!(t[0].content_type.as_deref(), Some("application/json"));
        assert_eq!(t[1].method, Method::PUT);
        assert_eq!(t[1].content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(t[2].method, Method::PATCH);
        assert_eq!(t[3].method, Method::DELETE);
        assert_eq!(t[3].body, None);
        assert_eq!(t[4].body.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn body_from_file_relative_to_url_file() {
        let dir = std::env::temp_dir().join(format!("stormproof-urlfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("order.json"), b"{\"q\":1}").unwrap();
        let urls = dir.join("shop.urls");
        std::fs::write(&urls, "H=localhost:1\nhttp://$(H)/orders POST <order.json\n").unwrap();
        let t = parse_url_file(&urls).unwrap();
        assert_eq!(t[0].body.as_deref(), Some(&b"{\"q\":1}"[..]));
        assert_eq!(t[0].content_type.as_deref(), Some("application/json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e = parse("# ok\nhttp://h/a\nhttp://h/b FETCH x\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("urls.txt:3: expected a method"), "{e}");
        let e = parse("http://h/$(NOPE_NOT_DEFINED_XYZ)\n").unwrap_err();
        assert!(e.to_string().starts_with("urls.txt:1: expected variable `NOPE_NOT_DEFINED_XYZ`"), "{e}");
        let e = parse("\nhttp://h/$(OPEN\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("https://h/\n").unwrap_err();
        assert!(e.message.contains("https"), "{e}");
        let e = parse("http://h/ POST <missing-file.json\n").unwrap_err();
        assert!(e.message.contains("readable body file"), "{e}");
        let e = parse("http://h/ POST <\n").unwrap_err();
        assert!(e.message.contains("file name"), "{e}");
        let e = parse("# nothing\n").unwrap_err();
        assert!(e.message.contains("at least one URL"), "{e}");
        let e = parse_url_file(Path::new("/nonexistent/x.urls")).unwrap_err();
        assert_eq!(e.line, 0);
    }
}
