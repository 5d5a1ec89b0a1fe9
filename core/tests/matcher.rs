//! The matcher reproduces the Python matcher's output exactly: every lookup (each attempt
//! with every transaction field), every orphan in emission order, and the final counters,
//! over the frozen cases of `fixtures/matcher/` (see its README).

#[path = "../examples/matcher_dump/case.rs"]
mod case;

use std::fs;
use std::path::Path;

#[test]
fn matcher_reproduces_the_python_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/matcher");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .expect("fixtures/matcher exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    assert!(
        paths.len() > 100,
        "expected the fixture cases in {}",
        dir.display()
    );
    let mut failed = vec![];
    let mut runs = 0;
    for p in &paths {
        let text = fs::read_to_string(p).expect("fixture readable");
        let c = case::parse_case(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        runs += c.configs.len();
        if let Err(e) = case::check(&c) {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases differ from Python:\n{}",
        failed.len(),
        paths.len(),
        failed
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(runs >= paths.len());
}

#[test]
fn py_repr_writes_floats_as_python_does() {
    use case::py_repr;
    for (x, s) in [
        (5.0, "5.0"),
        (0.1, "0.1"),
        (1e-05, "1e-05"),
        (0.00015, "0.00015"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (123456789012345.6, "123456789012345.6"),
        (1700000000.1343641, "1700000000.1343641"),
        (-0.0015, "-0.0015"),
        (0.0, "0.0"),
        (2.5e-7, "2.5e-07"),
    ] {
        assert_eq!(py_repr(x), s);
    }
}
