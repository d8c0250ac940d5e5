//! Replaying a fuzz crate's checked-in regression corpus under `cargo test` (stable): shared by
//! `fbs/tests/fuzz_regression.rs` and `worker/core/tests/fuzz_regression.rs`, which include this
//! file with `#[path]` next to their fuzz crate's `src/lib.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

/// The names in `dir` (files or directories, not hidden ones).
pub(crate) fn names(dir: &Path, want_dir: bool) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir() == want_dir)
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Runs every input of `<fuzz_dir>/regression/<target>/` through `run`; fails listing the inputs
/// that panicked, or when there is none to run (nothing passes having replayed nothing).
pub(crate) fn replay(fuzz_dir: &Path, target: &str, run: fn(&[u8])) {
    let dir = fuzz_dir.join("regression").join(target);
    assert!(
        dir.is_dir(),
        "{}: the regression corpus of fuzz target {target} is missing",
        dir.display()
    );
    let files = names(&dir, false);
    assert!(
        !files.is_empty(),
        "{}: the regression corpus of fuzz target {target} is empty",
        dir.display()
    );
    #[allow(clippy::disallowed_methods)] // timing the replay, not the core
    let start = Instant::now();
    let mut failed = Vec::new();
    for name in &files {
        let data = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(name.as_str());
        }
    }
    println!(
        "fuzz target {target}: replayed {} regression inputs in {:.2?}",
        files.len(),
        start.elapsed()
    );
    assert!(
        failed.is_empty(),
        "fuzz target {target}: {} of {} regression inputs fail (panics above): {failed:?}",
        failed.len(),
        files.len()
    );
}

/// `fuzz_targets/`, the crate's target list and `regression/` name the same targets.
pub(crate) fn assert_every_target_replayed(fuzz_dir: &Path, targets: &[&str]) {
    let listed: BTreeSet<String> = targets.iter().map(|t| (*t).to_owned()).collect();
    let binaries: BTreeSet<String> = names(&fuzz_dir.join("fuzz_targets"), false)
        .into_iter()
        .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
        .collect();
    assert_eq!(binaries, listed, "fuzz_targets/ and fuzz::TARGETS differ");
    assert_eq!(
        names(&fuzz_dir.join("regression"), true),
        listed,
        "regression/ and fuzz::TARGETS differ"
    );
}
