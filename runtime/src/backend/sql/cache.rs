//! The query result cache: results of `query-cached` by plugin, statement
//! and parameters, kept in the runtime's two-tier cache
//! ([`CacheService`]), so with Redis every node shares them. Each entry is
//! tagged with the tables it read (and `*`), carrying their epochs from
//! before the query ran; a write by the plugin invalidates the tags of the
//! tables it names, on every node, so an entry over a changed table is
//! never served. A write the parser cannot read invalidates the plugin's
//! `*` tag, which every entry of that plugin carries.
//!
//! Keys and tags start with a control character, which no plugin's own
//! cache key or tag may hold.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::{Rows, Value};
use crate::backend::cache::CacheService;

/// The pseudo-table every entry of a plugin depends on.
const ALL: &str = "*";

/// Longest a cached result may live, whatever the plugin asks.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// The query cache of a runtime, over its [`CacheService`].
#[derive(Debug)]
pub struct QueryCache {
    cache: CacheService,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The tables a read depends on, with their epochs before it ran.
#[derive(Debug, Clone)]
pub struct ReadSet(Vec<(String, u64)>);

impl QueryCache {
    /// A query cache storing its results in `cache`.
    pub fn new(cache: CacheService) -> Self {
        QueryCache {
            cache,
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

    /// The tables `statement` reads and their current epochs; `None` when
    /// it is not a single query the parser understands (not cached).
    pub async fn read_set(&self, plugin: &str, statement: &str) -> Option<ReadSet> {
        let Tables::Read(mut tables) = tables(statement) else {
            return None;
        };
        tables.push(ALL.to_string());
        let tags: Vec<String> = tables.iter().map(|t| tag(t)).collect();
        Some(ReadSet(self.cache.tag_epochs(plugin, &tags).await))
    }

    /// A fresh cached result, if any.
    pub async fn get(&self, plugin: &str, statement: &str, params: &[Value]) -> Option<Rows> {
        let found = self
            .cache
            .get_internal(plugin, &key(statement, params))
            .await
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Rows>(&bytes).ok());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores a result read under `read_set` for `ttl`. A result larger
    /// than the cache's `max_value` is simply not stored.
    pub async fn put(
        &self,
        plugin: &str,
        statement: &str,
        params: &[Value],
        rows: &Rows,
        ttl: Duration,
        read_set: ReadSet,
    ) {
        // JSON with serde_json's float_roundtrip: a cached REAL reads back
        // bit for bit.
        let Ok(bytes) = serde_json::to_vec(rows) else {
            return;
        };
        let _ = self
            .cache
            .set_tagged(
                plugin,
                &key(statement, params),
                bytes.into(),
                ttl.min(MAX_TTL),
                read_set.0,
            )
            .await;
    }

    /// After a successful write: entries over the tables `statement` names
    /// are stale (all of the plugin's when the statement does not parse).
    pub async fn wrote(&self, plugin: &str, statement: &str) {
        let tables = match tables(statement) {
            Tables::Read(_) | Tables::Unknown => return,
            Tables::Written(tables) if !tables.is_empty() => tables,
            Tables::Written(_) | Tables::Unparsed => vec![ALL.to_string()],
        };
        for table in tables {
            self.cache
                .invalidate_tag_internal(plugin, &tag(&table))
                .await;
        }
    }
}

/// The tag of one table's results.
fn tag(table: &str) -> String {
    format!("\u{0}sql:{table}")
}

/// The key of one statement with its parameters.
fn key(statement: &str, params: &[Value]) -> String {
    let mut hash = Sha256::new();
    hash.update(statement.as_bytes());
    hash.update(b"\0");
    hash.update(format!("{params:?}").as_bytes());
    format!("\u{0}sql:{:x}", hash.finalize())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: i64) -> Rows {
        Rows {
            columns: vec!["x".into(), "r".into()],
            // A double that a lossy float parser does not read back exactly.
            rows: vec![vec![
                Value::Integer(n),
                Value::Real(0.213_674_273_068_862_77),
            ]],
        }
    }

    #[tokio::test]
    async fn a_write_invalidates_exactly_the_tables_it_names() {
        let service = CacheService::start(
            &crate::config::CacheConfig::default(),
            None,
            crate::monitor::CacheStats::default(),
        )
        .await;
        let cache = QueryCache::new(service);
        let ttl = Duration::from_secs(60);
        for (sql, n) in [
            ("SELECT x FROM a", 1),
            ("SELECT x FROM b JOIN c ON b.x = c.x", 2),
        ] {
            let read = cache.read_set("p", sql).await.expect("a query");
            cache.put("p", sql, &[], &rows(n), ttl, read).await;
        }
        let get = |sql: &'static str| cache.get("p", sql, &[]);
        assert_eq!(get("SELECT x FROM a").await, Some(rows(1)));
        cache.wrote("p", "UPDATE c SET x = 1").await;
        assert!(get("SELECT x FROM a").await.is_some());
        assert!(get("SELECT x FROM b JOIN c ON b.x = c.x").await.is_none());
        cache.wrote("other", "DELETE FROM a").await;
        assert!(
            get("SELECT x FROM a").await.is_some(),
            "another plugin's write"
        );
        // A write between reading the epochs and storing outdates the entry.
        let read = cache
            .read_set("p", "SELECT x FROM d")
            .await
            .expect("a query");
        cache.wrote("p", "INSERT INTO d VALUES (1)").await;
        cache
            .put("p", "SELECT x FROM d", &[], &rows(4), ttl, read)
            .await;
        assert!(get("SELECT x FROM d").await.is_none(), "raced write");
        cache.wrote("p", "this is not sql").await;
        assert!(get("SELECT x FROM a").await.is_none(), "unparseable write");
        assert!(cache.read_set("p", "DELETE FROM a").await.is_none());
    }
}
