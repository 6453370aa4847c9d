//! `?fields=` parsing and selection (`http::fields`).
//!
//! Input: a query string (`limit=2&fields=id,author.name`), optionally
//! followed by a newline and a JSON document to select from.
//!
//! Invariants: a selection exists exactly when the query has a `fields`
//! pair; a parsed selection never holds an empty name, only names of
//! letters, digits, `_` and `-`; applied to a document that has exactly
//! its paths (and members it did not ask for), it keeps exactly its paths;
//! applied leniently to any document it never fails and keeps only what
//! the document had; applied strictly it fails or agrees with lenient.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let (query, document) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let asked = form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "fields");
    let parsed = trellis::fuzz::fields(query);
    assert_eq!(parsed.is_some(), asked, "{query:?}");
    let Some(Ok((selection, paths))) = parsed else {
        return;
    };
    assert!(!paths.is_empty(), "an empty selection from {query:?}");
    for path in &paths {
        for name in path {
            assert!(!name.is_empty(), "an empty name in {path:?}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "name {name:?}"
            );
        }
    }

    // A document with exactly the selected paths, plus a member nobody
    // can select at every level.
    let mut wanted = Value::Object(Map::new());
    for path in &paths {
        insert(&mut wanted, path);
    }
    let mut document_of_paths = wanted.clone();
    add_unselectable(&mut document_of_paths);
    assert_eq!(selection.apply(document_of_paths, false), Ok(wanted));

    if let Some(document) = document.and_then(|d| serde_json::from_slice::<Value>(d).ok()) {
        let lenient = selection
            .apply(document.clone(), true)
            .expect("lenient selection never fails");
        assert!(
            within(&lenient, &document),
            "{lenient} is not within {document}"
        );
        if let Ok(strict) = selection.apply(document, false) {
            assert_eq!(strict, lenient);
        }
    }
});

/// Sets `path` in `value` (objects all the way), a leaf as `1` unless it
/// already holds members.
fn insert(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let map = value.as_object_mut().expect("objects only");
    let child = map.entry(first.clone()).or_insert_with(|| json!(1));
    if !rest.is_empty() {
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        insert(child, rest);
    }
}

fn add_unselectable(value: &mut Value) {
    if let Value::Object(map) = value {
        for child in map.values_mut() {
            add_unselectable(child);
        }
        map.insert("not selectable!".into(), json!("x"));
    }
}

/// Whether `part` keeps only what `whole` has: members of objects, the
/// same number of array items, equal scalars.
fn within(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| within(v, wv))),
        (Value::Array(p), Value::Array(w)) => {
            p.len() == w.len() && p.iter().zip(w).all(|(a, b)| within(a, b))
        }
        (p, w) => p == w,
    }
}
