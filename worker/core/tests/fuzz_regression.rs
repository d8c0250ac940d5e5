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

#[path = "../../../fbs/fuzz/replay.rs"]
mod replay;

use std::fs;
use std::path::{Path, PathBuf};

use ferrosfu_fbs::DtlsState;
use replay::names;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

macro_rules! replays {
    ($($target:ident),* $(,)?) => {$(
        mod $target {
            #[test]
            fn regression_corpus_passes() {
                super::replay::replay(
                    &super::fuzz_dir(),
                    stringify!($target),
                    super::fuzz::$target::run,
                );
            }
        }
    )*};
}

replays!(
    core_datagram,
    dtls_auth,
    ice_stun,
    recv_stream,
    rtcp,
    rtp,
    sctp,
    vp8,
    vp9
);

#[test]
fn every_fuzz_target_has_a_regression_corpus_replayed_here() {
    let targets: Vec<&str> = fuzz::TARGETS.iter().map(|(t, _)| *t).collect();
    replay::assert_every_target_replayed(&fuzz_dir(), &targets);
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

/// The forged DATA of `seed-forged-relative` reaches the association: a message is delivered and
/// the DCEP one is counted (a header or TSN the harness gets wrong would drop them all silently).
#[test]
fn sctp_forged_seed_reaches_the_association() {
    let dir = fuzz_dir().join("regression").join("sctp");
    let data = fs::read(dir.join("seed-forged-relative")).expect("seed-forged-relative exists");
    let c = fuzz::sctp::outcome(&data);
    assert!(c.messages_in >= 2, "{c:?}");
    assert_eq!(c.dcep_ignored, 1, "{c:?}");
    assert!(c.unknown_stream >= 1 && c.unknown_ppid >= 1, "{c:?}");
}
