//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) on stable Rust, through the same checks the
//! fuzz targets run (`fuzz/checks.rs`), so that every input the fuzzer kept, crash reproducers
//! included, is a regression test of `cargo test`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The files of `fuzz/corpus/<target>/`; a missing or empty corpus is a failure, not a pass.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the corpus is committed with the code",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{} has no files: the corpus is committed with the code",
        dir.display()
    );
    files
}

/// Runs `check` on every file of the corpus and names each one that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let files = corpus(target);
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs fail their checks (messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    eprintln!("{target}: {} inputs checked", files.len());
}

#[test]
fn credential_report_corpus() {
    replay("credential_report", checks::credential_report);
}

#[test]
fn config_corpus() {
    replay("config", checks::config);
}
