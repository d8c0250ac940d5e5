//! The channel codec's fuzz regression corpus, replayed by `cargo test` (stable, debug build):
//! every file of `fbs/fuzz/regression/<target>/` goes through the same function the libFuzzer
//! binary `fuzz_targets/<target>.rs` calls, `fuzz/src/<target>.rs`'s `run`, included here with
//! `#[path]` (the fuzz crate itself builds only with nightly and sanitizers). A target whose
//! directory is missing or empty fails: nothing passes having replayed nothing.
//!
//! Counts and times: `cargo test -p ferrosfu-fbs --test fuzz_regression -- --nocapture`.
//! A failing input is replayed under the fuzzer with
//! `cd fbs/fuzz && cargo +nightly fuzz run <target> regression/<target>/<file>`.

#[allow(unreachable_pub)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The names in `dir` (files or directories, not hidden ones).
fn names(dir: &Path, want_dir: bool) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir() == want_dir)
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Runs every input of `regression/<target>/` through `run`; fails listing the inputs that
/// panicked, or when there is none to run.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = fuzz_dir().join("regression").join(target);
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

#[test]
fn channel_frames_regression_corpus_passes() {
    replay("channel_frames", fuzz::channel_frames::run);
}

#[test]
fn every_fuzz_target_has_a_regression_corpus_replayed_here() {
    let listed: BTreeSet<String> = fuzz::TARGETS.iter().map(|(t, _)| (*t).to_owned()).collect();
    let binaries: BTreeSet<String> = names(&fuzz_dir().join("fuzz_targets"), false)
        .into_iter()
        .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
        .collect();
    assert_eq!(binaries, listed, "fuzz_targets/ and fuzz::TARGETS differ");
    assert_eq!(
        names(&fuzz_dir().join("regression"), true),
        listed,
        "regression/ and fuzz::TARGETS differ"
    );
}
