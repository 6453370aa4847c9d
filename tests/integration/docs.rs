//! Documents stay in step with the code: the generated WIT reference, and
//! the configuration reference against the config types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `docs/wit-reference.md` is what `tests/src/wit_doc.rs` makes of `wit/`.
/// `TRELLIS_BLESS=1` rewrites it.
#[test]
fn wit_reference_is_in_step_with_the_wit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let generated = trellis_tests::wit_doc::reference(&root.join("wit")).expect("the WIT parses");
    let path = root.join("docs/wit-reference.md");
    if std::env::var_os("TRELLIS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("written");
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == generated,
        "docs/wit-reference.md is out of step with wit/; rewrite it with \
         TRELLIS_BLESS=1 cargo test -p trellis-tests --test integration wit_reference"
    );
}

/// `docs/configuration.md` is in step with the config types: every TOML
/// code block in it is a valid config on its own, and together the blocks name
/// every key the config accepts. The types refuse unknown keys
/// (`deny_unknown_fields`), so a probe key put into each table the blocks
/// show is refused with serde's list of that table's keys; each of those
/// must appear in a block as a key of that table (commented-out lines, for
/// keys without a default, count). Tables of free keys (`jobs.queues`, a
/// plugin's `config`) are not probed.
#[test]
fn configuration_doc_is_in_step_with_the_config_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md is readable");
    let blocks = toml_blocks(&doc);
    assert!(
        !blocks.is_empty(),
        "docs/configuration.md has no ```toml block"
    );
    let parse = |text: &str| trellis::Config::parse(text, &path, Vec::<(String, String)>::new());

    let mut problems = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        if let Err(err) = parse(block.as_str()) {
            problems.push(format!("```toml block {} does not parse: {err}", i + 1));
        }
    }

    // The tables to probe: the top level, and every table a block opens,
    // each once (plugins stand for one another), with where to put the probe.
    let mut tables: BTreeMap<String, (usize, Option<usize>)> = BTreeMap::new();
    tables.insert(String::new(), (0, None));
    for (b, block) in blocks.iter().enumerate() {
        for (l, line) in block.lines().enumerate() {
            if let Some(table) = header(line.trim()) {
                tables.entry(normalise(&table)).or_insert((b, Some(l)));
            }
        }
    }
    let documented = documented_keys(&blocks);
    let none = BTreeSet::new();
    for (table, (b, line)) in &tables {
        if table == "jobs.queues" || table == "plugins.<name>.config" {
            continue;
        }
        let shown = if table.is_empty() {
            "the top level".to_string()
        } else {
            format!("[{table}]")
        };
        let probed = with_probe(&blocks[*b], *line);
        let message = match parse(probed.as_str()) {
            Ok(_) => {
                problems.push(format!("{shown} accepted the unknown key `{PROBE}`"));
                continue;
            }
            Err(err) => err.to_string(),
        };
        let Some(fields) = expected_fields(&message) else {
            problems.push(format!("{shown}: the probe failed otherwise: {message}"));
            continue;
        };
        let keys = documented.get(table).unwrap_or(&none);
        for field in fields.iter().filter(|f| !keys.contains(*f)) {
            problems.push(format!("{shown}: key `{field}` is in no ```toml block"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md is out of step with the config types:\n{}",
        problems.join("\n")
    );
}

/// The key put into a table to make the config types list that table's keys.
const PROBE: &str = "zz_probe";

/// The contents of every TOML code block (fenced as toml) of a markdown text.
fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in doc.lines() {
        let fence = line.trim();
        if let Some(lines) = current.as_mut() {
            if fence == "```" {
                blocks.push(lines.join("\n"));
                current = None;
            } else {
                lines.push(line);
            }
        } else if fence == "```toml" {
            current = Some(Vec::new());
        }
    }
    blocks
}

/// The table a `[a.b]` or `[[a.b]]` header line opens, as `a.b`.
fn header(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?.trim_start_matches('[');
    let table = inner[..inner.find(']')?].trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    (!table.is_empty() && table.chars().all(bare)).then(|| table.to_string())
}

/// The key a `key = value` line sets (`a` of a dotted `a.b = value`).
fn assigned_key(line: &str) -> Option<String> {
    let key = line[..line.find('=')?].trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    let first = key.split('.').next()?;
    (!first.is_empty() && key.chars().all(bare)).then(|| first.to_string())
}

/// A table path with any plugin's name replaced by `<name>`.
fn normalise(table: &str) -> String {
    let mut parts: Vec<&str> = table.split('.').collect();
    if parts.len() >= 2 && parts[0] == "plugins" {
        parts[1] = "<name>";
    }
    parts.join(".")
}

/// The keys the blocks show, by normalised table ("" is the top level). A
/// header documents each of its parts as a key of the table above it; a
/// commented-out line documents its key too.
fn documented_keys(blocks: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for block in blocks {
        let mut table = String::new();
        for line in block.lines() {
            let line = line.trim().trim_start_matches('#').trim();
            if let Some(opened) = header(line) {
                let parts: Vec<&str> = opened.split('.').collect();
                for (i, part) in parts.iter().enumerate() {
                    let above = normalise(&parts[..i].join("."));
                    keys.entry(above).or_default().insert(part.to_string());
                }
                table = normalise(&opened);
            } else if let Some(key) = assigned_key(line) {
                keys.entry(table.clone()).or_default().insert(key);
            }
        }
    }
    keys
}

/// `block` with the probe key as the first key of the table whose header
/// is line `header_line` (`None`: of the top level).
fn with_probe(block: &str, header_line: Option<usize>) -> String {
    let probe = format!("{PROBE} = 1");
    let mut lines: Vec<&str> = block.lines().collect();
    match header_line {
        Some(line) => lines.insert(line + 1, &probe),
        None => lines.insert(0, &probe),
    }
    lines.join("\n")
}

/// The keys serde lists when it refuses the probe: "unknown field
/// `zz_probe`, expected `a`", "... expected `a` or `b`", or "... expected
/// one of `a`, `b`, `c`".
fn expected_fields(message: &str) -> Option<Vec<String>> {
    let prefix = format!("unknown field `{PROBE}`, expected ");
    let rest = &message[message.find(&prefix)? + prefix.len()..];
    let list = rest.lines().next()?;
    Some(
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}
