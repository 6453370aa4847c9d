//! The SQLite statement guard and statement shapes.
//!
//! Input: SQL text, checked as one statement and as a migration (several
//! allowed), and shaped.
//!
//! Invariants: what passes as one statement passes as a migration; a
//! statement led by ATTACH, DETACH, PRAGMA or VACUUM is refused; no
//! statement that passes, read again by sqlparser, is one of those; a
//! shape is at most 512 bytes (and `...`), has no blank at either end, and
//! the cached `shape` agrees with the uncached one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;
use trellis::backend::sql::SqlError;

const REFUSED: &[&str] = &["ATTACH", "DETACH", "PRAGMA", "VACUUM"];

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let one = trellis::fuzz::sql_check(sql, false);
    let many = trellis::fuzz::sql_check(sql, true);
    if one.is_ok() {
        assert!(
            many.is_ok(),
            "{sql:?}: one statement passes, migration {many:?}"
        );
    }
    let led_by_refused = trellis::fuzz::sql_leading_keyword(sql)
        .is_some_and(|word| REFUSED.contains(&word.to_ascii_uppercase().as_str()));
    if led_by_refused {
        for verdict in [&one, &many] {
            assert!(
                matches!(verdict, Err(SqlError::PermissionDenied(_))),
                "{sql:?}: {verdict:?}"
            );
        }
    }
    if many.is_ok() {
        let statements = Parser::parse_sql(&SQLiteDialect {}, sql).expect("the guard parsed it");
        for statement in statements {
            let text = statement.to_string().to_ascii_uppercase();
            assert!(
                !REFUSED.iter().any(|word| text.starts_with(word)),
                "{sql:?} passed the guard with {text:?}"
            );
        }
    }

    let shape = trellis::fuzz::sql_shape(sql);
    assert!(shape.len() <= 512 + 3, "shape of {} bytes", shape.len());
    assert!(
        !shape.starts_with(' ') && !shape.ends_with(' '),
        "{shape:?}"
    );
    assert_eq!(trellis::backend::sql::shape(sql), shape);
});
