//! Interleaved rounds (`scripts/bench loadgen --rounds K`): the same build's fixed steps run K
//! times, each time on a fresh server, alternating with its `-before` baseline (after, before,
//! before, after, …) so that the machine's slow drifts (other tenants, thermal state) fall on
//! both builds alike. `results.json` keeps one run per round; the report merges them (every
//! figure the median of the rounds, min–max in brackets) and compares the builds round by round:
//! the paired ratio of round i is after_i ÷ before_i, measured minutes apart, not a whole run
//! apart.

use std::fmt::Write as _;

use super::{MAX_LOSS_PERCENT, int, load_key, scenario_cell};
use crate::steps::aggregate;
use crate::types::{Phase, Results, Run, Scenario, Step};

/// What makes two runs rounds of one measurement.
fn group_key(r: &Run) -> (String, Scenario, bool, Option<u64>) {
    (
        r.label().to_owned(),
        r.scenario,
        r.saturation.is_some(),
        r.steps.first().map(|s| s.bitrate_bps),
    )
}

/// The runs of `results` grouped into rounds, in first-appearance order.
fn groups(results: &Results) -> Vec<Vec<&Run>> {
    let mut out: Vec<Vec<&Run>> = Vec::new();
    for run in &results.runs {
        match out.iter_mut().find(|g| group_key(g[0]) == group_key(run)) {
            Some(g) => g.push(run),
            None => out.push(vec![run]),
        }
    }
    out
}

/// The steps of `runs` at one (phase, load), in first-appearance order.
fn steps_by_load<'a>(runs: &[&'a Run]) -> Vec<(Phase, Vec<&'a Step>)> {
    let mut out: Vec<(Phase, Vec<&Step>)> = Vec::new();
    for s in runs.iter().flat_map(|r| &r.steps) {
        match out
            .iter_mut()
            .find(|(p, v)| *p == s.phase && load_key(v[0]) == load_key(s))
        {
            Some((_, v)) => v.push(s),
            None => out.push((s.phase, vec![s])),
        }
    }
    out
}

/// `results` with the rounds of each run merged into one run: a step measured in several rounds
/// becomes the median of its rounds (min–max over the rounds). Runs without rounds are kept as
/// they are.
pub(super) fn merge(results: &Results) -> Results {
    let runs = groups(results)
        .into_iter()
        .map(|g| {
            let mut run = g[0].clone();
            if g.len() > 1 {
                run.steps = steps_by_load(&g)
                    .into_iter()
                    .map(|(phase, steps)| {
                        let windows: Vec<Step> = steps.into_iter().cloned().collect();
                        aggregate(&windows, phase)
                    })
                    .collect();
                run.notes.push(format!(
                    "{} interleaved rounds, a fresh server each: every figure is the median of the \
                     rounds' figures, min–max over the rounds in brackets",
                    g.len()
                ));
                run.saturation = g.iter().find_map(|r| r.saturation.clone());
            }
            run
        })
        .collect();
    Results {
        runs,
        ..results.clone()
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The paired comparison of each build with its `-before` baseline over interleaved rounds:
/// per fixed step, the ratio of pkt/s per core in each round, their median and min–max.
pub(super) fn paired(md: &mut String, results: &Results) {
    let groups = groups(results);
    let mut first = true;
    for a in groups.iter().filter(|g| g.len() > 1) {
        let Some(b) = groups.iter().find(|b| {
            let (la, sa, xa, ba) = group_key(a[0]);
            let (lb, sb, xb, bb) = group_key(b[0]);
            lb == format!("{la}-before") && (sa, xa, ba) == (sb, xb, bb) && b.len() > 1
        }) else {
            continue;
        };
        if first {
            md.push_str(
                "\n## Interleaved rounds\n\nEach round ran both builds on fresh servers minutes \
                 apart, in alternating order; the paired ratio of a round is its pkt/s per core \
                 ÷ the baseline's in the same round. A step where either side lost ≥ 1 % \
                 in a round is marked in that round.\n",
            );
            first = false;
        }
        let rounds = a.len().min(b.len());
        let _ = writeln!(
            md,
            "\n### {} ÷ {} — {}, {rounds} rounds\n\n| pubs × subs | per round | median | \
             min–max | rounds ≥ 1.00 |\n|---|---|---:|---|---:|",
            a[0].label(),
            b[0].label(),
            scenario_cell(a[0]),
        );
        let mut lowest: Option<(f64, u32)> = None;
        for (phase, steps) in steps_by_load(&a[..rounds]) {
            if phase != Phase::Fixed {
                continue;
            }
            let key = load_key(steps[0]);
            let mut cells = Vec::new();
            let mut ratios = Vec::new();
            for (ra, rb) in a.iter().zip(b.iter()).take(rounds) {
                let find = |r: &Run| {
                    r.steps
                        .iter()
                        .find(|s| s.phase == Phase::Fixed && load_key(s) == key)
                        .cloned()
                };
                let (Some(sa), Some(sb)) = (find(ra), find(rb)) else {
                    cells.push("—".to_owned());
                    continue;
                };
                if sb.pps_per_core <= 0.0 {
                    cells.push("—".to_owned());
                    continue;
                }
                let r = sa.pps_per_core / sb.pps_per_core;
                let lost =
                    sa.loss_percent >= MAX_LOSS_PERCENT || sb.loss_percent >= MAX_LOSS_PERCENT;
                cells.push(format!("{r:.2}{}", if lost { " (loss)" } else { "" }));
                ratios.push(r);
            }
            if ratios.is_empty() {
                continue;
            }
            let above = ratios.iter().filter(|&&r| r >= 1.0).count();
            let (lo, hi) = ratios
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
            let n = ratios.len();
            let m = median(&mut ratios);
            if lowest.is_none_or(|(l, _)| m < l) {
                lowest = Some((m, key.1));
            }
            let _ = writeln!(
                md,
                "| {} × {} | {} | {m:.2} | {lo:.2}–{hi:.2} | {above} of {n} |",
                key.0,
                key.1,
                cells.join(", "),
            );
        }
        if let Some((l, n)) = lowest {
            let _ = writeln!(
                md,
                "\nLowest median paired ratio: {l:.2} (at {n} subscribers, {} pkt/s per core \
                 rounds apart); median ≥ 1.00 at every step: {}.",
                a[0].steps
                    .iter()
                    .find(|s| s.subscribers == n && s.phase == Phase::Fixed)
                    .map_or("—".into(), |s| int(s.pps_per_core)),
                if l >= 1.0 { "yes" } else { "no" }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Machine, Profile, Target};

    fn step(subs: u32, ppc: f64) -> Step {
        Step {
            phase: Phase::Fixed,
            repeats: 1,
            publishers: 1,
            subscribers: subs,
            bitrate_bps: 2_000_000,
            pps_per_core: ppc,
            forwarded_pps: ppc / 2.0,
            sut_cpu_percent: 50.0,
            ..Step::default()
        }
    }

    fn run(name: &str, ppc: [f64; 2]) -> Run {
        Run {
            name: name.into(),
            target: Target::Ferrosfu,
            scenario: Scenario::Fanout,
            profile: Profile::Cm80,
            notes: Vec::new(),
            steps: vec![step(100, ppc[0]), step(500, ppc[1])],
            saturation: None,
        }
    }

    fn rounds() -> Results {
        Results {
            commit: "abc".into(),
            started_at: "now".into(),
            machine: Machine {
                uname: "Linux".into(),
                cpu_model: "cpu".into(),
                cores: 2,
                loadavg_start: "0".into(),
            },
            runs: vec![
                run("ferrosfu", [100.0, 200.0]),
                run("ferrosfu-before", [90.0, 210.0]),
                run("ferrosfu-before", [120.0, 190.0]),
                run("ferrosfu", [130.0, 180.0]),
                run("ferrosfu", [110.0, 190.0]),
                run("ferrosfu-before", [100.0, 200.0]),
            ],
        }
    }

    #[test]
    fn rounds_merge_into_medians_with_their_range() {
        let m = merge(&rounds());
        assert_eq!(m.runs.len(), 2);
        let now = &m.runs[0];
        assert_eq!(now.label(), "ferrosfu");
        assert_eq!(now.steps.len(), 2);
        assert_eq!(now.steps[0].pps_per_core, 110.0);
        assert_eq!(now.steps[0].repeats, 3);
        let spread = now.steps[0].spread.expect("three rounds have a spread");
        assert_eq!(
            (spread.pps_per_core.min, spread.pps_per_core.max),
            (100.0, 130.0)
        );
        assert_eq!(m.runs[1].steps[1].pps_per_core, 200.0);
        assert!(now.notes[0].contains("3 interleaved rounds"));
    }

    #[test]
    fn paired_ratios_are_taken_round_by_round() {
        let mut md = String::new();
        paired(&mut md, &rounds());
        // 100 subscribers: 100/90, 130/120, 110/100 → median 1.10 (1.08 … 1.11).
        assert!(
            md.contains("| 1 × 100 | 1.11, 1.08, 1.10 | 1.10 | 1.08–1.11 | 3 of 3 |"),
            "{md}"
        );
        // 500: 200/210, 180/190, 190/200 → all below 1.
        assert!(
            md.contains("| 1 × 500 | 0.95, 0.95, 0.95 | 0.95 | 0.95–0.95 | 0 of 3 |"),
            "{md}"
        );
        assert!(
            md.contains("Lowest median paired ratio: 0.95 (at 500 subscribers"),
            "{md}"
        );
        assert!(md.contains("every step: no"), "{md}");
    }

    #[test]
    fn single_runs_are_left_alone() {
        let mut r = rounds();
        r.runs.truncate(2);
        assert_eq!(merge(&r).runs, r.runs);
        let mut md = String::new();
        paired(&mut md, &r);
        assert!(md.is_empty());
    }
}
