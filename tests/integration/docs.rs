//! Documents generated from the code stay in step with it.

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
