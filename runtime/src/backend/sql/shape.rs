//! Statement shapes: a statement with its literals replaced by `?` and its
//! whitespace folded, so `WHERE id = 7` and `WHERE id = 8` count as one
//! statement in logs, spans and N+1 detection.

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// Longest shape kept (logs and headers stay bounded).
const MAX_SHAPE: usize = 512;

/// Shapes by statement, computed once per statement string.
static SHAPES: std::sync::LazyLock<moka::sync::Cache<String, String>> =
    std::sync::LazyLock::new(|| moka::sync::Cache::new(10_000));

/// The shape of `sql`; the statement itself (cut) if it does not tokenize.
pub fn shape(sql: &str) -> String {
    SHAPES.get_with(sql.to_string(), || shape_uncached(sql))
}

/// [`shape`] without the cache.
pub(crate) fn shape_uncached(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return cut(sql.split_whitespace().collect::<Vec<_>>().join(" "));
    };
    let mut out = String::with_capacity(sql.len());
    let mut space = false;
    for token in tokens {
        match token {
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_))
            | Token::Whitespace(_) => space = !out.is_empty(),
            other => {
                if space {
                    out.push(' ');
                    space = false;
                }
                match other {
                    Token::Number(..)
                    | Token::SingleQuotedString(_)
                    | Token::DoubleQuotedByteStringLiteral(_)
                    | Token::SingleQuotedByteStringLiteral(_)
                    | Token::NationalStringLiteral(_)
                    | Token::EscapedStringLiteral(_)
                    | Token::HexStringLiteral(_)
                    | Token::DollarQuotedString(_) => out.push('?'),
                    token => out.push_str(&token.to_string()),
                }
            }
        }
    }
    cut(out)
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_SHAPE {
        text.truncate(text.floor_char_boundary(MAX_SHAPE));
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::shape;

    #[test]
    fn literals_become_placeholders() {
        assert_eq!(
            shape("SELECT  * FROM notes\n WHERE id = 42 AND title = 'x' -- hi"),
            "SELECT * FROM notes WHERE id = ? AND title = ?"
        );
        assert_eq!(
            shape("SELECT * FROM notes WHERE id = $1"),
            "SELECT * FROM notes WHERE id = $1"
        );
    }
}
