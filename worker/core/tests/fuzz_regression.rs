//! The fuzz regression corpus, replayed by `cargo test` (stable, debug build): every file of
//! `worker/core/fuzz/regression/<target>/` — the hand-made seeds of `fuzz/make_seeds.py` and the
//! minimized inputs earlier fuzz runs kept — goes through the same function the libFuzzer binary
//! `fuzz_targets/<target>.rs` calls, `fuzz/src/<target>.rs`'s `run`, included here with
//! `#[path]` (the fuzz crate itself builds only with nightly and sanitizers). A target whose
//! directory is missing or empty fails: nothing passes having replayed nothing.
//!
//! Counts and times: `cargo test -p ferrosfu-worker-core --test fuzz_regression -- --nocapture`.
//! A failing input is replayed under the fuzzer with
//! `cd worker/core/fuzz && cargo +nightly fuzz run <target> regression/<target>/<file>`.

#[allow(unreachable_pub)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferrosfu_fbs::DtlsState;

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

/// Runs every input of `<corpus>/<target>/` through `run`; fails listing the inputs that
/// panicked, or when there is none to run.
fn replay(corpus: &str, target: &str, run: fn(&[u8])) {
    let dir = fuzz_dir().join(corpus).join(target);
    assert!(
        dir.is_dir(),
        "{}: the {corpus} corpus of fuzz target {target} is missing",
        dir.display()
    );
    let files = names(&dir, false);
    assert!(
        !files.is_empty(),
        "{}: the {corpus} corpus of fuzz target {target} is empty",
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
        "fuzz target {target}: replayed {} {corpus} inputs in {:.2?}",
        files.len(),
        start.elapsed()
    );
    assert!(
        failed.is_empty(),
        "fuzz target {target}: {} of {} {corpus} inputs fail (panics above): {failed:?}",
        failed.len(),
        files.len()
    );
}

macro_rules! replays {
    ($($target:ident),* $(,)?) => {$(
        mod $target {
            #[test]
            fn regression_corpus_passes() {
                super::replay("regression", stringify!($target), super::fuzz::$target::run);
            }
        }
    )*};
}

replays!(core_datagram, dtls_auth, ice_stun, recv_stream, rtcp, rtp);

#[test]
fn every_fuzz_target_has_a_regression_corpus_replayed_here() {
    let listed: BTreeSet<String> = fuzz::TARGETS.iter().map(|(t, _)| (*t).to_owned()).collect();
    let binaries: BTreeSet<String> = names(&fuzz_dir().join("fuzz_targets"), false)
        .into_iter()
        .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
        .collect();
    let corpora = names(&fuzz_dir().join("regression"), true);
    assert_eq!(binaries, listed, "fuzz_targets/ and fuzz::TARGETS differ");
    assert_eq!(corpora, listed, "regression/ and fuzz::TARGETS differ");
}

/// The hand-made seeds of `fuzz/make_seeds.py` whose names promise an outcome.
fn seeds_promising<'a>(
    target: &str,
    outcomes: &'a [(&'a str, &'a str)],
) -> Vec<(String, Vec<u8>, &'a str)> {
    let dir = fuzz_dir().join("regression").join(target);
    let mut found = Vec::new();
    for name in names(&dir, false) {
        let Some(stem) = name.strip_prefix("seed-") else {
            continue;
        };
        if let Some((_, outcome)) = outcomes.iter().find(|(suffix, _)| stem.ends_with(suffix)) {
            let data = fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            found.push((name, data, *outcome));
        }
    }
    assert!(!found.is_empty(), "{target}: no seed promises an outcome");
    found
}

/// A seed that no longer reaches what its name says (the input format changed and
/// `make_seeds.py` was not rerun, or the behaviour changed) would still "pass" as a mere
/// no-panic input: these check the outcome.
#[test]
fn dtls_auth_seeds_reach_the_outcome_their_names_say() {
    let outcomes = [
        ("-connects", "connected"),
        ("-fails", "failed"),
        ("-refused", "refused"),
    ];
    for (name, data, want) in seeds_promising("dtls_auth", &outcomes) {
        let got = match fuzz::dtls_auth::outcome(&data) {
            Some(DtlsState::Connected) => "connected",
            Some(DtlsState::Failed) => "failed",
            None => "refused",
            Some(other) => panic!("{name}: ended {other:?}"),
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn recv_stream_seeds_reach_the_outcome_their_names_say() {
    let outcomes = [("-dropped", "dropped"), ("-resyncs", "resyncs")];
    for (name, data, want) in seeds_promising("recv_stream", &outcomes) {
        let (resyncs, bad_sequence) =
            fuzz::recv_stream::outcome(&data).unwrap_or_else(|| panic!("{name}: too short"));
        let got = match (resyncs, bad_sequence) {
            (0, 1) => "dropped",
            (1, 0) => "resyncs",
            other => panic!("{name}: (resyncs, dropped) = {other:?}"),
        };
        assert_eq!(got, want, "{name}");
    }
}
