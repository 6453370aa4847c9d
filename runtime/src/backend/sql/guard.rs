//! What a plugin's SQL may do on SQLite, where there are no roles to lean
//! on: the statement must parse, one statement per call (migrations may
//! hold several), and nothing may reach outside the plugin's own file or
//! into the runtime's bookkeeping: no ATTACH/DETACH, PRAGMA or VACUUM, no
//! schema-qualified names other than `main`/`temp`, no `_trellis*` tables.
//! PostgreSQL needs none of this: each plugin logs in as its own role.

use std::ops::ControlFlow;

use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use super::SqlError;

/// Leading keywords refused outright (the parser may not know all forms).
const REFUSED: &[&str] = &["ATTACH", "DETACH", "PRAGMA", "VACUUM"];

/// Prefix of the runtime's own tables inside a plugin's SQLite file.
pub(crate) const RESERVED_PREFIX: &str = "_trellis";

/// Verdicts by statement: plugins run the same statement strings (with `$N`
/// parameters) over and over, so each is parsed once.
static VERDICTS: std::sync::LazyLock<moka::sync::Cache<(String, bool), Result<(), SqlError>>> =
    std::sync::LazyLock::new(|| moka::sync::Cache::new(10_000));

/// Checks `sql` for SQLite; `multi` allows several statements.
pub fn check_statement(sql: &str, multi: bool) -> Result<(), SqlError> {
    VERDICTS.get_with((sql.to_string(), multi), || check_uncached(sql, multi))
}

/// [`check_statement`] without the verdict cache.
pub(crate) fn check_uncached(sql: &str, multi: bool) -> Result<(), SqlError> {
    if let Some(word) = leading_keyword(sql)
        && REFUSED.contains(&word.to_ascii_uppercase().as_str())
    {
        return Err(SqlError::PermissionDenied(format!(
            "{word} is not allowed for plugins"
        )));
    }
    let statements = Parser::parse_sql(&SQLiteDialect {}, sql)
        .map_err(|err| SqlError::Syntax(err.to_string()))?;
    if statements.is_empty() {
        return Err(SqlError::Syntax("no statement".into()));
    }
    if !multi && statements.len() > 1 {
        return Err(SqlError::Invalid(
            "one statement per call; use a transaction for several".into(),
        ));
    }
    for statement in &statements {
        if matches!(
            statement,
            Statement::AttachDatabase { .. } | Statement::Pragma { .. } | Statement::Vacuum(_)
        ) {
            return Err(SqlError::PermissionDenied(
                "ATTACH, PRAGMA and VACUUM are not allowed for plugins".into(),
            ));
        }
    }
    let verdict = visit_relations(&statements, |name| {
        let parts: Vec<String> = name.0.iter().map(|p| p.to_string()).collect();
        let table = parts.last().map(|t| unquote(t)).unwrap_or_default();
        let schema = (parts.len() > 1).then(|| unquote(&parts[parts.len() - 2]));
        if table.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
            return ControlFlow::Break(format!("table {table} belongs to the runtime"));
        }
        if let Some(schema) = schema
            && !matches!(schema.to_ascii_lowercase().as_str(), "main" | "temp")
        {
            return ControlFlow::Break(format!("schema {schema} is out of reach"));
        }
        ControlFlow::Continue(())
    });
    match verdict {
        ControlFlow::Break(reason) => Err(SqlError::PermissionDenied(reason)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The first word of `sql` after blanks and comments, when it starts with
/// a letter.
pub(crate) fn leading_keyword(sql: &str) -> Option<&str> {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after
                .split_once('\n')
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after
                .split_once("*/")
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

fn unquote(ident: &str) -> String {
    ident
        .trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_statements_pass() {
        for sql in [
            "SELECT * FROM notes WHERE id = ?",
            "INSERT INTO notes (title) VALUES (?) RETURNING id",
            "UPDATE notes SET title = ? WHERE id = ?",
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            "with x as (select 1) select * from x",
        ] {
            assert_eq!(check_statement(sql, false), Ok(()), "{sql}");
        }
    }

    #[test]
    fn escapes_are_refused() {
        for sql in [
            "ATTACH DATABASE '/tmp/other.db' AS other",
            "  -- hi\n attach '/tmp/x' as x",
            "PRAGMA writable_schema = 1",
            "VACUUM INTO '/tmp/copy.db'",
            "SELECT * FROM other.notes",
            "SELECT * FROM _trellis_migrations",
            "DELETE FROM \"_TRELLIS_migrations\"",
        ] {
            assert!(
                matches!(
                    check_statement(sql, false),
                    Err(SqlError::PermissionDenied(_))
                ),
                "{sql} was not refused"
            );
        }
    }

    #[test]
    fn one_statement_unless_multi() {
        let sql = "CREATE TABLE a (x INT); CREATE TABLE b (y INT)";
        assert!(matches!(
            check_statement(sql, false),
            Err(SqlError::Invalid(_))
        ));
        assert_eq!(check_statement(sql, true), Ok(()));
        assert!(matches!(
            check_statement("SELEC 1", false),
            Err(SqlError::Syntax(_))
        ));
    }
}
