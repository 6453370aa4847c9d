//! The query result cache: results of `query-cached` by plugin, statement
//! and parameters. Each entry remembers the generation of every table it
//! read (captured before the query ran); a write by the plugin bumps the
//! generations of the tables it names, so an entry over a changed table is
//! never served. A write the parser cannot read bumps the plugin's `*`
//! generation, which every entry of that plugin depends on.
//!
//! In-process (moka, bounded by an estimate of bytes held). Generations are
//! per node for now; with Redis they will be shared (cache issue).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::{Rows, Value};

/// The pseudo-table every entry of a plugin depends on.
const ALL: &str = "*";

/// Longest a cached result may live, whatever the plugin asks.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// The cache shared by every plugin of a runtime.
#[derive(Debug)]
pub struct QueryCache {
    entries: moka::sync::Cache<Key, std::sync::Arc<Entry>>,
    generations: Mutex<HashMap<(String, String), u64>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    plugin: String,
    statement: String,
    params: String,
}

#[derive(Debug)]
struct Entry {
    rows: Rows,
    read: Vec<(String, u64)>,
    expires: Instant,
}

/// The tables a read depends on, with their generations before it ran.
#[derive(Debug, Clone)]
pub struct ReadSet(Vec<(String, u64)>);

impl QueryCache {
    /// A cache holding about `max_bytes` of results.
    pub fn new(max_bytes: u64) -> Self {
        QueryCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &Key, entry: &std::sync::Arc<Entry>| {
                    let bytes = key.statement.len() + key.params.len() + weight(&entry.rows);
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(MAX_TTL)
                .build(),
            generations: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The tables `statement` reads and their current generations; `None`
    /// when it is not a single query the parser understands (not cached).
    pub fn read_set(&self, plugin: &str, statement: &str) -> Option<ReadSet> {
        let Tables::Read(mut tables) = tables(statement) else {
            return None;
        };
        tables.push(ALL.to_string());
        let generations = self.lock();
        Some(ReadSet(
            tables
                .into_iter()
                .map(|t| {
                    let g = generations
                        .get(&(plugin.to_string(), t.clone()))
                        .copied()
                        .unwrap_or(0);
                    (t, g)
                })
                .collect(),
        ))
    }

    /// A fresh cached result, if any.
    pub fn get(&self, plugin: &str, statement: &str, params: &[Value]) -> Option<Rows> {
        let key = key(plugin, statement, params);
        let fresh = self.entries.get(&key).filter(|entry| {
            entry.expires > Instant::now() && {
                let generations = self.lock();
                entry.read.iter().all(|(t, g)| {
                    generations
                        .get(&(plugin.to_string(), t.clone()))
                        .copied()
                        .unwrap_or(0)
                        == *g
                })
            }
        });
        match fresh {
            Some(entry) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.rows.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores a result read under `read_set` for `ttl`.
    pub fn put(
        &self,
        plugin: &str,
        statement: &str,
        params: &[Value],
        rows: &Rows,
        ttl: Duration,
        read_set: ReadSet,
    ) {
        let entry = Entry {
            rows: rows.clone(),
            read: read_set.0,
            expires: Instant::now() + ttl.min(MAX_TTL),
        };
        self.entries
            .insert(key(plugin, statement, params), std::sync::Arc::new(entry));
    }

    /// After a successful write: entries over the tables `statement` names
    /// are stale (all of the plugin's when the statement does not parse).
    pub fn wrote(&self, plugin: &str, statement: &str) {
        let tables = match tables(statement) {
            Tables::Read(_) | Tables::Unknown => return,
            Tables::Written(tables) if !tables.is_empty() => tables,
            Tables::Written(_) | Tables::Unparsed => vec![ALL.to_string()],
        };
        let mut generations = self.lock();
        for table in tables {
            *generations.entry((plugin.to_string(), table)).or_insert(0) += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a statement does to which tables.
#[derive(Debug, Clone)]
enum Tables {
    /// A single query reading these.
    Read(Vec<String>),
    /// Several queries: not cached, writes nothing.
    Unknown,
    /// A statement that may write these.
    Written(Vec<String>),
    /// Not parseable.
    Unparsed,
}

/// Analyses by statement string, parsed once each.
static TABLES: std::sync::LazyLock<moka::sync::Cache<String, Tables>> =
    std::sync::LazyLock::new(|| moka::sync::Cache::new(10_000));

fn tables(statement: &str) -> Tables {
    TABLES.get_with(statement.to_string(), || {
        match Parser::parse_sql(&GenericDialect {}, statement) {
            Ok(parsed) => match parsed.as_slice() {
                [Statement::Query(_)] => Tables::Read(relations(&parsed)),
                all if all.iter().all(|s| matches!(s, Statement::Query(_))) => Tables::Unknown,
                _ => Tables::Written(relations(&parsed)),
            },
            Err(_) => Tables::Unparsed,
        }
    })
}

/// Lower-cased, unquoted table names (last name part) a statement mentions.
fn relations(statements: &Vec<Statement>) -> Vec<String> {
    let mut tables = Vec::new();
    let _ = visit_relations(statements, |name| {
        if let Some(last) = name.0.last() {
            let table = last
                .to_string()
                .trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
                .to_ascii_lowercase();
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    tables
}

fn key(plugin: &str, statement: &str, params: &[Value]) -> Key {
    Key {
        plugin: plugin.to_string(),
        statement: statement.to_string(),
        params: format!("{params:?}"),
    }
}

fn weight(rows: &Rows) -> usize {
    let cells: usize = rows
        .rows
        .iter()
        .flatten()
        .map(|v| match v {
            Value::Text(s) | Value::Json(s) => 24 + s.len(),
            Value::Blob(b) => 24 + b.len(),
            _ => 24,
        })
        .sum();
    cells + rows.columns.iter().map(|c| 24 + c.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: i64) -> Rows {
        Rows {
            columns: vec!["x".into()],
            rows: vec![vec![Value::Integer(n)]],
        }
    }

    #[test]
    fn a_write_invalidates_exactly_the_tables_it_names() {
        let cache = QueryCache::new(1 << 20);
        let ttl = Duration::from_secs(60);
        for (sql, n) in [
            ("SELECT x FROM a", 1),
            ("SELECT x FROM b JOIN c ON b.x = c.x", 2),
        ] {
            let read = cache.read_set("p", sql).expect("a query");
            cache.put("p", sql, &[], &rows(n), ttl, read);
        }
        assert!(cache.get("p", "SELECT x FROM a", &[]).is_some());
        cache.wrote("p", "UPDATE c SET x = 1");
        assert!(cache.get("p", "SELECT x FROM a", &[]).is_some());
        assert!(
            cache
                .get("p", "SELECT x FROM b JOIN c ON b.x = c.x", &[])
                .is_none()
        );
        cache.wrote("other", "DELETE FROM a");
        assert!(
            cache.get("p", "SELECT x FROM a", &[]).is_some(),
            "another plugin's write"
        );
        cache.wrote("p", "this is not sql");
        assert!(
            cache.get("p", "SELECT x FROM a", &[]).is_none(),
            "unparseable write"
        );
        assert!(cache.read_set("p", "DELETE FROM a").is_none());
    }
}
