//! Route patterns and lookup: the router's own table (matchit, conflicts,
//! reserved paths, `HEAD` falling back to `GET`, `405` with `Allow`).
//!
//! Input: lines `METHOD /pattern` (routes, each of its own plugin; those a
//! manifest could not declare are skipped, as the plugin loader refuses
//! them), then optionally a line `---` and lines `METHOD /path` (lookups,
//! any method).
//!
//! Invariants: a reserved pattern is never accepted; every accepted route
//! is found again through a path made from its pattern (its `{param}`s
//! filled in), with exactly those values when that route is the one that
//! matched; a lookup that matched yields params that are non-empty
//! substrings of the path; a 405's `Allow` is non-empty and does not list
//! the method asked for.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis::fuzz::Routes;
use trellis::router::Lookup;

/// The methods a manifest's route may have.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (routes, lookups) = input.split_once("\n---\n").unwrap_or((input, ""));
    let mut table = Routes::default();
    let mut accepted = Vec::new();
    for (index, line) in routes.lines().take(64).enumerate() {
        let Some((method, pattern)) = line.split_once(' ') else {
            continue;
        };
        // What a manifest may declare (`plugin/manifest.rs` refuses the
        // rest before the router sees it).
        if !METHODS.contains(&method) || !pattern.starts_with('/') || pattern.contains(['?', '#']) {
            continue;
        }
        let plugin = format!("p{index}");
        if table.add(method, pattern, &plugin).is_ok() {
            assert!(
                !trellis::router::is_reserved(pattern),
                "reserved pattern {pattern:?} accepted"
            );
            accepted.push((method, pattern, plugin));
        }
    }

    for (method, pattern, plugin) in &accepted {
        let Some((path, values)) = instance(pattern) else {
            continue;
        };
        match table.lookup(method, &path) {
            Lookup::Found { target, params } => {
                check_params(&path, &params);
                if target == plugin {
                    let found: Vec<&str> = params.iter().map(|(_, v)| v.as_str()).collect();
                    assert_eq!(found, values, "{pattern:?} matched {path:?}");
                }
            }
            Lookup::MethodNotAllowed(allow) => {
                // Another pattern took the path (matchit prefers static
                // segments) and has other methods.
                check_allow(method, &allow);
            }
            Lookup::NotFound => panic!("{method} {pattern:?} was accepted, {path:?} not found"),
        }
    }

    for line in lookups.lines().take(64) {
        let Some((method, path)) = line.split_once(' ') else {
            continue;
        };
        match table.lookup(method, path) {
            Lookup::Found { params, .. } => check_params(path, &params),
            Lookup::MethodNotAllowed(allow) => check_allow(method, &allow),
            Lookup::NotFound => {}
        }
    }
});

fn check_params(path: &str, params: &[(String, String)]) {
    for (name, value) in params {
        assert!(!value.is_empty(), "param {name} of {path:?} is empty");
        assert!(
            path.contains(value.as_str()),
            "param {name}={value:?} not in {path:?}"
        );
    }
}

fn check_allow(method: &str, allow: &str) {
    assert!(!allow.is_empty(), "405 with an empty Allow");
    let listed: Vec<&str> = allow.split(", ").collect();
    assert!(
        !listed.contains(&method),
        "405 for {method}, yet Allow: {allow}"
    );
    if method == "HEAD" {
        assert!(!listed.contains(&"GET"), "405 for HEAD, yet Allow: {allow}");
    }
}

/// A path `pattern` matches, with the values of its parameters in order:
/// `{name}` → `v<i>`, `{*name}` → `c<i>/x`, and `{{`, `}}` → `{`, `}`
/// (read as matchit reads them: the escapes first, left to right, so
/// `{a}}}` is one parameter named `a}`). `None` for a pattern matchit would
/// refuse.
fn instance(pattern: &str) -> Option<(String, Vec<String>)> {
    // (char, escaped)
    let mut chars: Vec<(char, bool)> = Vec::new();
    let mut source = pattern.chars().peekable();
    while let Some(c) = source.next() {
        let escaped = matches!(c, '{' | '}') && source.peek() == Some(&c);
        if escaped {
            source.next();
        }
        chars.push((c, escaped));
    }
    let mut path = String::new();
    let mut values = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let (c, escaped) = chars[at];
        if c == '{' && !escaped {
            let close = (at + 1..chars.len()).find(|&i| chars[i] == ('}', false))?;
            let value = if chars.get(at + 1) == Some(&('*', false)) {
                format!("c{}/x", values.len())
            } else {
                format!("v{}", values.len())
            };
            path.push_str(&value);
            values.push(value);
            at = close + 1;
        } else {
            path.push(c);
            at += 1;
        }
    }
    Some((path, values))
}
