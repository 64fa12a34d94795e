//! README's "Coming from LiteLLM" table stays true: every test a ✓ or partial row names exists
//! (a Rust `fn` or a pytest `def` in the file it names), and every such row names at least one.

use std::path::Path;

#[test]
fn every_test_the_compatibility_table_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("## Coming from LiteLLM: what carries over")
        .nth(1)
        .expect("README has the compatibility section");
    let section = section.split("\n## ").next().unwrap();
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| LiteLLM proxy feature"))
        .collect();
    assert!(rows.len() >= 20, "the table lost rows: {}", rows.len());
    let mut checked = 0;
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a row has feature, status and tests: {row}");
        let (status, tests) = (cells[1], cells[2]);
        let refs: Vec<&str> = tests
            .split(", ")
            .map(|t| t.trim_matches('`'))
            .filter(|t| !t.is_empty())
            .collect();
        if status.starts_with('✗') {
            assert!(refs.is_empty(), "a ✗ row names no tests: {row}");
            continue;
        }
        assert!(
            status.starts_with('✓') || status.starts_with("partial"),
            "status is ✓, partial or ✗: {row}"
        );
        assert!(!refs.is_empty(), "a ✓ or partial row names its tests: {row}");
        for r in refs {
            let (file, name) = r.split_once("::").unwrap_or_else(|| panic!("`{r}` is not path::test"));
            let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let defined = [format!("fn {name}("), format!("def {name}(")]
                .iter()
                .any(|d| text.contains(d.as_str()));
            assert!(defined, "README names `{name}` in {file}, which does not define it");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} tests named");
}
