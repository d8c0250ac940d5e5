//! The supervisor's fuzz regression corpus, replayed by `cargo test` (stable, debug build):
//! every file of `supervisor/fuzz/regression/<target>/` goes through the same function the
//! libFuzzer binary `fuzz_targets/<target>.rs` calls (`fuzz/src/<target>.rs`'s `run`, included
//! here with `#[path]`). A target whose directory is missing or empty fails.
//!
//! A failing input is replayed under the fuzzer with
//! `cd supervisor/fuzz && cargo +nightly fuzz run <target> regression/<target>/<file>`.

#[allow(unreachable_pub, dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

#[path = "../../fbs/fuzz/replay.rs"]
mod replay;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn turn_messages_regression_corpus_passes() {
    replay::replay(&fuzz_dir(), "turn_messages", fuzz::turn_messages::run);
}

#[test]
fn sdp_offer_regression_corpus_passes() {
    replay::replay(&fuzz_dir(), "sdp_offer", fuzz::sdp_offer::run);
}

#[test]
fn every_fuzz_target_has_a_regression_corpus_replayed_here() {
    let targets: Vec<&str> = fuzz::TARGETS.iter().map(|(t, _)| *t).collect();
    replay::assert_every_target_replayed(&fuzz_dir(), &targets);
}
