//! Field selection (sparse fieldsets): `?fields=id,title,author.name`
//! keeps only those members of a JSON response. Paths are dotted for
//! nested objects; arrays apply the selection to each element; a list
//! envelope (`{"items": [...], "next_cursor": ...}`) applies it to each
//! item and keeps the envelope. A path the response does not have is a
//! 400 naming it, unless the route declares selection lenient (route
//! option `fields = "lenient"`). Applied by the host to plugin responses
//! (before the response cache stores them, so the cache keys on the
//! selection through the query string) and to the runtime's own JSON.
//! Parsed once per request: by `http::api` for the runtime's endpoints, by
//! `guest_request` for plugin routes.
//! Layer: inside `http` (beside `convert`); below it only `error`.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::Response;
use http::header::CONTENT_TYPE;
use http_body_util::Full;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The request's selection, parsed; a malformed one is a 400.
pub fn requested(query: Option<&str>) -> Result<Option<Selection>, ApiError> {
    Selection::from_query(query)
        .transpose()
        .map_err(ApiError::BadRequest)
}

/// Applies `selection` to a successful JSON response; other responses
/// pass unchanged. An unknown field is a 400 naming it.
pub fn select(
    response: Response<Full<Bytes>>,
    selection: &Selection,
    lenient: bool,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    if !response.status().is_success() || !json {
        return Ok(response);
    }
    let bytes = super::convert::body_bytes(&response);
    let (parts, _) = response.into_parts();
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Full::new(bytes)));
    };
    let selected = selection
        .apply(value, lenient)
        .map_err(|path| ApiError::BadRequest(format!("unknown field `{path}` in ?fields=")))?;
    let body = serde_json::to_vec(&selected).unwrap_or_default();
    Ok(Response::from_parts(parts, Full::new(Bytes::from(body))))
}

/// The query parameter.
pub const PARAM: &str = "fields";
/// Most paths one selection may name.
const MAX_PATHS: usize = 100;

/// A parsed selection: a tree of member names (a leaf keeps the whole
/// member).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selection {
    children: BTreeMap<String, Selection>,
}

impl Selection {
    /// The selection of a query string: `None` without `fields`, an error
    /// message for a malformed one.
    pub fn from_query(query: Option<&str>) -> Option<Result<Selection, String>> {
        let value = form_urlencoded::parse(query?.as_bytes())
            .find(|(name, _)| name == PARAM)
            .map(|(_, value)| value.into_owned())?;
        Some(Selection::parse(&value))
    }

    fn parse(text: &str) -> Result<Selection, String> {
        let mut root = Selection::default();
        let paths: Vec<&str> = text.split(',').map(str::trim).collect();
        if paths.iter().all(|p| p.is_empty()) {
            return Err("`fields` names no field".into());
        }
        if paths.len() > MAX_PATHS {
            return Err(format!("`fields` names more than {MAX_PATHS} paths"));
        }
        for path in paths.into_iter().filter(|p| !p.is_empty()) {
            let mut node = &mut root;
            for segment in path.split('.') {
                let valid = !segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(format!(
                        "`fields`: `{path}` is not a dotted path of names (letters, digits, `_`, `-`)"
                    ));
                }
                node = node.children.entry(segment.to_string()).or_default();
            }
        }
        Ok(root)
    }

    /// The path from the root to every node of the selection (branches and
    /// leaves), as its member names.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn paths(&self) -> Vec<Vec<String>> {
        let mut paths = Vec::new();
        for (name, child) in &self.children {
            paths.push(vec![name.clone()]);
            for mut below in child.paths() {
                below.insert(0, name.clone());
                paths.push(below);
            }
        }
        paths
    }

    /// `value` with only the selected members; `Err(path)` names the first
    /// selected path it does not have (never when `lenient`).
    pub fn apply(&self, value: Value, lenient: bool) -> Result<Value, String> {
        match value {
            // A list envelope: select within each item.
            Value::Object(mut map)
                if !self.children.contains_key("items")
                    && matches!(map.get("items"), Some(Value::Array(_))) =>
            {
                if let Some(items) = map.remove("items") {
                    map.insert("items".into(), self.select(items, "", lenient)?);
                }
                Ok(Value::Object(map))
            }
            value => self.select(value, "", lenient),
        }
    }

    fn select(&self, value: Value, prefix: &str, lenient: bool) -> Result<Value, String> {
        if self.children.is_empty() {
            return Ok(value);
        }
        match value {
            Value::Object(mut map) => {
                let mut kept = Map::new();
                for (name, child) in &self.children {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    match map.remove(name) {
                        Some(member) => {
                            kept.insert(name.clone(), child.select(member, &path, lenient)?);
                        }
                        None if lenient => {}
                        None => return Err(path),
                    }
                }
                Ok(Value::Object(kept))
            }
            Value::Array(items) => items
                .into_iter()
                .map(|item| self.select(item, prefix, lenient))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            // An absent optional object selects to itself.
            Value::Null => Ok(Value::Null),
            scalar if lenient => Ok(scalar),
            _ => {
                let first = self.children.keys().next().map_or("", String::as_str);
                Err(if prefix.is_empty() {
                    first.to_string()
                } else {
                    format!("{prefix}.{first}")
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn select(fields: &str, value: Value) -> Result<Value, String> {
        Selection::parse(fields).expect("valid").apply(value, false)
    }

    #[test]
    fn nested_paths_arrays_and_list_envelopes() {
        let note = json!({"id": 1, "title": "t", "body": "b",
                          "author": {"name": "ann", "email": "a@x"},
                          "tags": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]});
        assert_eq!(
            select("id,author.name,tags.k", note.clone()),
            Ok(json!({"id": 1, "author": {"name": "ann"}, "tags": [{"k": "a"}, {"k": "b"}]}))
        );
        assert_eq!(
            select("author", note.clone()),
            Ok(json!({"author": {"name": "ann", "email": "a@x"}}))
        );
        let page = json!({"items": [note.clone(), note.clone()], "next_cursor": "7"});
        assert_eq!(
            select("id", page),
            Ok(json!({"items": [{"id": 1}, {"id": 1}], "next_cursor": "7"}))
        );
        assert_eq!(select("id,nope", note.clone()), Err("nope".into()));
        assert_eq!(
            select("author.phone", note.clone()),
            Err("author.phone".into())
        );
        assert_eq!(select("title.x", note.clone()), Err("title.x".into()));
        let lenient = Selection::parse("id,nope,title.x").expect("valid");
        assert_eq!(
            lenient.apply(note, true),
            Ok(json!({"id": 1, "title": "t"}))
        );
        assert!(Selection::parse("").is_err());
        assert!(Selection::parse("a..b").is_err());
        assert!(Selection::parse("a b").is_err());
        assert_eq!(
            Selection::from_query(Some("limit=2&fields=id%2Ctitle")),
            Some(Selection::parse("id,title"))
        );
        assert_eq!(Selection::from_query(Some("limit=2")), None);
    }
}
