//! `results.json` → `README.md` (summary and one table per run) and PNG plots
//! (`pps_vs_cpu.png`, `latency.png`, and `latency-<scenario>.png` for scenarios other than
//! fanout), all in the results directory.
//!
//! Figures compared across targets are taken at the same load (same publishers and subscribers)
//! and only from steps where the generator kept up; a generator-bound step is shown in the tables
//! but never used as a figure of the system under test without a mark.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::types::{Latency, Phase, Profile, Range, Results, Run, Scenario, Step, Target};

mod compare;
mod plots;
mod rounds;

/// The TTF file registered as "sans-serif" for the plots (`fonts-dejavu-core`).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Goals of issue 6 (recorded, not enforced).
const GOAL_RAW_PERCENT: f64 = 75.0;
const GOAL_JANUS_RATIO: f64 = 2.0;
const GOAL_P99_US: f64 = 1000.0;
/// Goal of issue 11: forwarded pkt/s at 1.5× the saturating load, % of the peak.
const GOAL_OVERLOAD_KEPT_PERCENT: f64 = 95.0;

/// Reads `dir/results.json`, writes `dir/README.md` and the plots, returns the markdown.
/// A plot that cannot be drawn (e.g. no font) is reported in the markdown, not as an error.
pub fn write_report(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let results: Results =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut md = markdown(&results);
    md.push_str("\n## Plots\n\n");
    match plots::plots(&rounds::merge(&results), dir) {
        Ok(files) => {
            for f in files {
                let _ = writeln!(md, "![{f}]({f})");
            }
        }
        Err(e) => {
            let _ = writeln!(md, "Plots not drawn: {e:#}");
        }
    }
    std::fs::write(dir.join("README.md"), &md).context("writing README.md")?;
    Ok(md)
}

fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Fanout => "fanout",
        Scenario::AudioMeeting => "audio-meeting",
        Scenario::Meeting => "meeting",
    }
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Cm80 => "AES_CM_128_HMAC_SHA1_80",
        Profile::Gcm128 => "AEAD_AES_128_GCM",
    }
}

/// Integer with thousands separators: 104167.4 → "104,167".
fn int(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    let out = groups.join(",");
    if n < 0 { format!("-{out}") } else { out }
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// The load of a step, for "same load" comparisons across targets.
fn load_key(s: &Step) -> (u32, u32, u64) {
    (s.publishers, s.subscribers, s.bitrate_bps)
}

/// The scenario column: a search run (own bitrate) is told apart from the fixed steps' run.
fn scenario_cell(run: &Run) -> String {
    match (&run.saturation, run.steps.first()) {
        (Some(_), Some(s)) => format!(
            "{} (search, {} Mbit/s)",
            scenario_name(run.scenario),
            s.bitrate_bps as f64 / 1e6
        ),
        _ => scenario_name(run.scenario).to_owned(),
    }
}

/// Above this loss a system under test is saturated: what it forwards is not its rate.
const MAX_LOSS_PERCENT: f64 = 1.0;

/// A step whose figures describe the system under test: the generator kept up and the system
/// forwarded (almost) everything.
fn measurable(s: &Step) -> bool {
    !s.generator_bound && s.loss_percent < MAX_LOSS_PERCENT
}

/// The step a run is summarized by: the highest measurable load.
fn best_step(run: &Run) -> Option<&Step> {
    run.steps.iter().filter(|s| measurable(s)).max_by(|a, b| {
        a.expected_pps
            .total_cmp(&b.expected_pps)
            .then(a.subscribers.cmp(&b.subscribers))
    })
}

/// The step the summary shows: the best measurable one, else (every step generator-bound, as
/// happens on a busy shared machine) the highest load without loss, flagged.
fn summary_step(run: &Run) -> Option<(&Step, bool)> {
    best_step(run).map(|s| (s, false)).or_else(|| {
        run.steps
            .iter()
            .filter(|s| s.loss_percent < MAX_LOSS_PERCENT)
            .max_by(|a, b| a.expected_pps.total_cmp(&b.expected_pps))
            .map(|s| (s, true))
    })
}

/// The run named `name` (see [`Run::label`]) of `scenario`.
fn find_run<'a>(results: &'a Results, name: &str, scenario: Scenario) -> Option<&'a Run> {
    results
        .runs
        .iter()
        .find(|r| r.label() == name && r.scenario == scenario)
}

/// `value / reference` at the same load; when the reference is not measurable there (the
/// generator could not keep up, or the reference was saturated and lost packets), against the
/// reference's best measurable step instead, with a mark. `None` without a reference step.
fn versus(results: &Results, reference: &str, run: &Run, step: &Step) -> Option<(f64, bool)> {
    let r = find_run(results, reference, run.scenario)?;
    let (s, marked) = match r.steps.iter().find(|s| load_key(s) == load_key(step)) {
        Some(s) if measurable(s) => (s, false),
        Some(s) => best_step(r).map_or((s, true), |b| (b, true)),
        None => return None,
    };
    (s.pps_per_core > 0.0).then(|| (step.pps_per_core / s.pps_per_core, marked))
}

/// Latency at 50 % CPU of the system under test: interpolated between the two steps around it,
/// else the nearest step. Generator-bound steps are not used.
fn latency_at_half_load(run: &Run) -> Option<(Latency, String)> {
    let mut pts: Vec<&Step> = run.steps.iter().filter(|s| measurable(s)).collect();
    pts.sort_by(|a, b| a.sut_cpu_percent.total_cmp(&b.sut_cpu_percent));
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.sut_cpu_percent <= 50.0
            && 50.0 <= b.sut_cpu_percent
            && b.sut_cpu_percent > a.sut_cpu_percent
        {
            let f = (50.0 - a.sut_cpu_percent) / (b.sut_cpu_percent - a.sut_cpu_percent);
            let lerp = |x: f64, y: f64| x + (y - x) * f;
            let l = Latency {
                p50_us: lerp(a.latency.p50_us, b.latency.p50_us),
                p99_us: lerp(a.latency.p99_us, b.latency.p99_us),
                p999_us: lerp(a.latency.p999_us, b.latency.p999_us),
            };
            let how = format!(
                "interpolated {:.0} → {:.0} % CPU",
                a.sut_cpu_percent, b.sut_cpu_percent
            );
            return Some((l, how));
        }
    }
    let s = pts.iter().min_by(|a, b| {
        (a.sut_cpu_percent - 50.0)
            .abs()
            .total_cmp(&(b.sut_cpu_percent - 50.0).abs())
    })?;
    Some((
        s.latency,
        format!(
            "nearest step: {:.0} % CPU, {} subs",
            s.sut_cpu_percent, s.subscribers
        ),
    ))
}

fn lat(l: &Latency) -> String {
    format!("{:.0} / {:.0} / {:.0}", l.p50_us, l.p99_us, l.p999_us)
}

/// The whole markdown document (without the plot section). Interleaved rounds of a run are
/// shown merged, and compared round by round with the baseline's (`rounds`).
pub fn markdown(raw: &Results) -> String {
    let merged = rounds::merge(raw);
    let results = &merged;
    let mut md = String::new();
    let m = &results.machine;
    let _ = writeln!(md, "# Load generator results\n");
    let _ = writeln!(md, "- commit: `{}`", results.commit);
    let _ = writeln!(md, "- date: {}", results.started_at);
    let _ = writeln!(
        md,
        "- machine: {}; {}; {} cores; load average at start: {}",
        m.uname, m.cpu_model, m.cores, m.loadavg_start
    );
    let mut profiles: Vec<&str> = results
        .runs
        .iter()
        .map(|r| profile_name(r.profile))
        .collect();
    profiles.sort_unstable();
    profiles.dedup();
    let _ = writeln!(md, "- SRTP profile: {}", profiles.join(", "));
    let _ = writeln!(
        md,
        "\nOne core is \"100 %\". *pkt/s per core* = forwarded packets/s ÷ (CPU of the system under test / 100 %). \
         Latency: payload send time → kernel receive time at the subscriber, µs. Comparisons are taken at the same \
         publishers × subscribers; `*` marks a comparison with the reference's best measurable step \
         because the reference was not measurable at that load (generator-bound, or saturated: loss ≥ 1 %). \
         Summaries use the highest measurable step; *(gen-bound)*: every step of that run was \
         generator-bound (on a shared machine mostly by the run-delay test: the generator waited > 10 % \
         of the window for its core), the highest step without loss is shown.\n"
    );

    md.push_str("## Summary\n\n");
    md.push_str(
        "| target | scenario | at (pubs × subs) | pkt/s per core | % of raw limit | ratio to Janus | \
         ratio to mediasoup | latency p50 / p99 / p99.9 µs at ~50 % load | RSS per consumer |\n",
    );
    md.push_str("|---|---|---|---:|---:|---:|---:|---|---:|\n");
    for run in &results.runs {
        let Some((step, bound)) = summary_step(run) else {
            let _ = writeln!(
                md,
                "| {} | {} | no step without loss | — | — | — | — | — | — |",
                run.label(),
                scenario_cell(run)
            );
            continue;
        };
        let pct = |v: Option<(f64, bool)>, scale: f64, unit: &str, prec: usize| match v {
            Some((x, bound)) => format!(
                "{:.prec$}{unit}{}",
                x * scale,
                if bound { " *" } else { "" }
            ),
            None => "n/a".into(),
        };
        let ratio = |reference: Target, scale: f64, unit: &str, prec: usize| {
            if run.target == reference {
                "—".to_owned()
            } else {
                pct(
                    versus(results, reference.as_str(), run, step),
                    scale,
                    unit,
                    prec,
                )
            }
        };
        let raw = ratio(Target::Raw, 100.0, " %", 0);
        let janus = ratio(Target::Janus, 1.0, "×", 2);
        let mediasoup = ratio(Target::Mediasoup, 1.0, "×", 2);
        let latency = latency_at_half_load(run)
            .map_or("—".into(), |(l, how)| format!("{} ({how})", lat(&l)));
        let _ = writeln!(
            md,
            "| {} | {} | {} × {}{} | {} | {raw} | {janus} | {mediasoup} | {latency} | {} |",
            run.label(),
            scenario_cell(run),
            step.publishers,
            step.subscribers,
            if bound { " (gen-bound)" } else { "" },
            int(step.pps_per_core),
            kib(step.rss_per_consumer_bytes),
        );
    }
    goals(&mut md, results);
    compare::saturation(&mut md, results);
    compare::ratios(&mut md, results);
    rounds::paired(&mut md, raw);

    for run in &results.runs {
        let _ = writeln!(
            md,
            "\n## {} — {} ({})\n",
            run.label(),
            scenario_cell(run),
            profile_name(run.profile)
        );
        for n in &run.notes {
            let _ = writeln!(md, "- {n}");
        }
        if !run.notes.is_empty() {
            md.push('\n');
        }
        md.push_str(
            "| pubs | subs | step | expected pkt/s | forwarded pkt/s | SUT CPU % | pkt/s per core | \
             loss % | p50 µs | p99 µs | p99.9 µs | RSS per consumer | gen CPU % | gen-bound |\n",
        );
        md.push_str("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for s in &run.steps {
            let sp = s.spread.as_ref();
            let int_r =
                |v: f64, r: Option<Range>| with_range(int(v), r.map(|r| (int(r.min), int(r.max))));
            let fix_r = |v: f64, r: Option<Range>, p: usize| {
                with_range(
                    format!("{v:.p$}"),
                    r.map(|r| (format!("{:.p$}", r.min), format!("{:.p$}", r.max))),
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {:.1} | {} |",
                s.publishers,
                s.subscribers,
                phase_name(s),
                int(s.expected_pps),
                int_r(s.forwarded_pps, sp.map(|x| x.forwarded_pps)),
                fix_r(s.sut_cpu_percent, sp.map(|x| x.sut_cpu_percent), 1),
                int_r(s.pps_per_core, sp.map(|x| x.pps_per_core)),
                fix_r(s.loss_percent, sp.map(|x| x.loss_percent), 3),
                fix_r(s.latency.p50_us, sp.map(|x| x.latency_p50_us), 0),
                fix_r(s.latency.p99_us, sp.map(|x| x.latency_p99_us), 0),
                s.latency.p999_us,
                kib(s.rss_per_consumer_bytes),
                s.generator_cpu_percent,
                if s.generator_bound { "yes" } else { "no" },
            );
        }
    }
    md
}

/// "median [min–max]" when the step was repeated.
fn with_range(median: String, range: Option<(String, String)>) -> String {
    match range {
        Some((lo, hi)) => format!("{median} [{lo}–{hi}]"),
        None => median,
    }
}

/// The step column: why it was run, and how often it was measured.
fn phase_name(s: &Step) -> String {
    let p = match s.phase {
        Phase::Fixed => "fixed",
        Phase::Search => "search",
        Phase::Overload => "overload",
    };
    if s.repeats > 1 {
        format!("{p} ×{}", s.repeats)
    } else {
        p.to_owned()
    }
}

/// Where ferrosfu's fanout stands against the goals of issue 6.
fn goals(md: &mut String, results: &Results) {
    let Some(run) = find_run(results, "ferrosfu", Scenario::Fanout) else {
        return;
    };
    let Some(step) = best_step(run) else { return };
    let status = |ok: bool| if ok { "met" } else { "not met" };
    md.push_str("\nGoals (issue 6), ferrosfu fanout:\n");
    match versus(results, "raw", run, step) {
        Some((x, marked)) => {
            let _ = writeln!(
                md,
                "- ≥ {GOAL_RAW_PERCENT:.0} % of the raw limit per core: {:.0} % — {}{}",
                x * 100.0,
                status(x * 100.0 >= GOAL_RAW_PERCENT),
                if marked {
                    " (against the raw loop's best measurable step)"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(
                md,
                "- ≥ {GOAL_RAW_PERCENT:.0} % of the raw limit per core: no raw step at this load"
            );
        }
    }
    match versus(results, "janus", run, step) {
        Some((x, marked)) => {
            let _ = writeln!(
                md,
                "- ≥ {GOAL_JANUS_RATIO:.0}× Janus: {x:.2}× — {}{}",
                status(x >= GOAL_JANUS_RATIO),
                if marked {
                    " (against Janus's best measurable step: at this load it was saturated)"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(
                md,
                "- ≥ {GOAL_JANUS_RATIO:.0}× Janus: no Janus step at this load"
            );
        }
    }
    if let Some((l, how)) = latency_at_half_load(run) {
        let _ = writeln!(
            md,
            "- p99 latency ≤ {GOAL_P99_US:.0} µs at 50 % load: {:.0} µs ({how}) — {}",
            l.p99_us,
            status(l.p99_us <= GOAL_P99_US)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Machine, Saturation, Spread};

    fn step(subs: u32, cpu: f64, pps_per_core: f64, p99: f64, bound: bool) -> Step {
        let fwd = pps_per_core * cpu / 100.0;
        Step {
            phase: Phase::Fixed,
            repeats: 1,
            spread: None,
            publishers: 1,
            subscribers: subs,
            bitrate_bps: 2_000_000,
            packet_size: 1200,
            duration_s: 8.0,
            sent_pps: 208.0,
            expected_pps: 208.0 * f64::from(subs),
            forwarded_pps: fwd,
            sut_cpu_percent: cpu,
            pps_per_core,
            generator_cpu_percent: 40.0,
            loss_percent: 0.01,
            latency: Latency {
                p50_us: p99 / 4.0,
                p99_us: p99,
                p999_us: p99 * 3.0,
            },
            sut_rss_bytes: 50 << 20,
            rss_per_consumer_bytes: 20.0 * 1024.0,
            generator_bound: bound,
        }
    }

    fn results() -> Results {
        let run = |target: Target, steps| Run {
            name: String::new(),
            saturation: None,
            target,
            scenario: Scenario::Fanout,
            profile: Profile::Cm80,
            notes: vec![format!("{} note", target.as_str())],
            steps,
        };
        Results {
            commit: "abc1234+dirty".into(),
            started_at: "2026-11-29T12:00:00Z".into(),
            machine: Machine {
                uname: "Linux 6.18 x86_64".into(),
                cpu_model: "Test CPU".into(),
                cores: 2,
                loadavg_start: "0.10 0.20 0.30".into(),
            },
            runs: vec![
                run(
                    Target::Raw,
                    vec![
                        step(100, 5.0, 640_000.0, 100.0, false),
                        step(500, 20.0, 600_000.0, 150.0, false),
                    ],
                ),
                run(
                    Target::Ferrosfu,
                    vec![
                        step(100, 20.0, 400_000.0, 200.0, false),
                        step(500, 80.0, 450_000.0, 600.0, false),
                        step(1000, 99.0, 460_000.0, 3000.0, true),
                    ],
                ),
                run(
                    Target::Janus,
                    vec![
                        step(100, 40.0, 100_000.0, 900.0, false),
                        step(500, 100.0, 90_000.0, 9000.0, false),
                    ],
                ),
                Run {
                    scenario: Scenario::AudioMeeting,
                    ..run(
                        Target::Ferrosfu,
                        vec![step(100, 10.0, 300_000.0, 100.0, false)],
                    )
                },
            ],
        }
    }

    /// `step` measured three times: pkt/s per core spread ±`noise`.
    fn repeated(mut s: Step, noise: f64) -> Step {
        s.repeats = 3;
        let r = |v: f64, f: f64| Range {
            min: v * (1.0 - f),
            max: v * (1.0 + f),
        };
        s.spread = Some(Spread {
            forwarded_pps: r(s.forwarded_pps, noise),
            pps_per_core: r(s.pps_per_core, noise),
            sut_cpu_percent: r(s.sut_cpu_percent, 0.0),
            loss_percent: r(s.loss_percent, 0.0),
            latency_p50_us: r(s.latency.p50_us, 0.1),
            latency_p99_us: r(s.latency.p99_us, 0.1),
        });
        s
    }

    /// The current build, its baseline and mediasoup, repeated, with a saturation search.
    fn compared() -> Results {
        let mut r = results();
        let searched = |mut runs: Run, peak: f64, kept: f64| {
            let mut over = step(750, 100.0, peak * kept, 9000.0, false);
            over.phase = Phase::Overload;
            over.loss_percent = 40.0;
            runs.steps.push(over);
            runs.saturation = Some(Saturation {
                criterion: "median loss > 1 % or median SUT CPU ≥ 95 %".into(),
                last_ok_subscribers: 400,
                saturating_subscribers: Some(500),
                peak_forwarded_pps: peak,
                peak_at_subscribers: 500,
                overload_subscribers: Some(750),
                overload_forwarded_pps: Some(peak * kept),
                overload_kept_percent: Some(kept * 100.0),
                stopped: None,
            });
            runs
        };
        let mut now = r.runs.remove(1);
        now.steps = now.steps.into_iter().map(|s| repeated(s, 0.02)).collect();
        let before = Run {
            name: "ferrosfu-before".into(),
            steps: vec![
                repeated(step(100, 20.0, 380_000.0, 250.0, false), 0.02),
                repeated(step(500, 80.0, 460_000.0, 700.0, false), 0.02),
            ],
            ..now.clone()
        };
        let mediasoup = Run {
            name: String::new(),
            target: Target::Mediasoup,
            steps: vec![repeated(step(100, 50.0, 150_000.0, 900.0, false), 0.05)],
            ..now.clone()
        };
        r.runs.push(searched(now, 400_000.0, 0.97));
        r.runs.push(searched(before, 380_000.0, 0.90));
        r.runs.push(searched(mediasoup, 130_000.0, 0.5));
        r
    }

    #[test]
    fn ratios_spread_and_saturation() {
        let md = markdown(&compared());
        println!("{md}");
        assert!(
            md.contains("### ferrosfu ÷ ferrosfu-before — fanout"),
            "{md}"
        );
        assert!(md.contains("### ferrosfu ÷ mediasoup — fanout"), "{md}");
        // 400k vs 380k at 100: 1.05, overlapping ±2 % ranges? 392k..408k vs 372.4k..387.6k: apart.
        assert!(
            md.contains("| 1 × 100 | 400,000 | 380,000 | 1.05 | 1.05 | 0.80 | apart |"),
            "{md}"
        );
        assert!(
            md.contains("| 1 × 500 | 450,000 | 460,000 | 0.98 |"),
            "{md}"
        );
        assert!(md.contains(
            "Lowest pkt/s-per-core ratio over the fixed steps: 0.98 (at 500 subscribers)"
        ));
        assert!(md.contains("ferrosfu ÷ ferrosfu-before ≥ 1.00 at every step: no."));
        assert!(md.contains(
            "Saturation peak: 400,000 vs 380,000 pkt/s (1.05); overload kept 97.0 % vs 90.0 %."
        ));
        assert!(
            md.contains(
                "| ferrosfu | fanout | 400 | 500 | 400,000 (500) | 750 | 388,000 | 97.0 % | met |"
            ),
            "{md}"
        );
        assert!(md.contains("| mediasoup | fanout | 400 | 500 | 130,000 (500) | 750 | 65,000 | 50.0 % | not met |"), "{md}");
        // Medians with their ranges, the phase column.
        assert!(
            md.contains("| 1 | 100 | fixed ×3 | 20,800 | 80,000 [78,400–81,600] |"),
            "{md}"
        );
        assert!(md.contains("| 1 | 750 | overload |"), "{md}");
        // Summary: the mediasoup column.
        let row = md
            .lines()
            .find(|l| l.starts_with("| ferrosfu | fanout (search, 2 Mbit/s) | 1 × 500 |"))
            .unwrap_or_else(|| panic!("{md}"));
        assert!(row.contains("| 450,000 | 75 % | 5.00× | n/a |"), "{row}");
        let dir = std::env::temp_dir().join(format!("lg-report-cmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(&compared()).unwrap(),
        )
        .unwrap();
        let md = write_report(&dir).unwrap();
        assert!(
            md.contains("![forwarded_vs_offered.png](forwarded_vs_offered.png)"),
            "{md}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn numbers() {
        assert_eq!(int(104_167.4), "104,167");
        assert_eq!(int(999.0), "999");
        assert_eq!(int(1000.0), "1,000");
        assert_eq!(int(-1234.0), "-1,234");
        assert_eq!(int(f64::NAN), "—");
    }

    #[test]
    fn half_load_latency() {
        let r = results();
        let (l, how) = latency_at_half_load(&r.runs[1]).unwrap();
        // 20 % → 200 µs, 80 % → 600 µs: 50 % is halfway.
        assert!((l.p99_us - 400.0).abs() < 1e-9, "{l:?}");
        assert!(how.contains("interpolated"), "{how}");
        let (l, how) = latency_at_half_load(&r.runs[0]).unwrap();
        assert_eq!(l.p99_us, 150.0);
        assert!(how.contains("nearest"), "{how}");
    }

    #[test]
    fn report_tables_and_plots() {
        let dir = std::env::temp_dir().join(format!("lg-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(&results()).unwrap(),
        )
        .unwrap();
        let md = write_report(&dir).unwrap();
        println!("{md}");
        assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), md);
        assert!(md.contains("- commit: `abc1234+dirty`"));
        assert!(md.contains("Test CPU; 2 cores"));
        // Summary: ferrosfu at its highest non-generator-bound step (500), vs raw and Janus at 500.
        let row = md
            .lines()
            .find(|l| l.starts_with("| ferrosfu | fanout | 1 × 500 |"))
            .unwrap_or_else(|| panic!("{md}"));
        assert!(row.contains("| 450,000 | 75 % | 5.00× |"), "{row}");
        assert!(row.contains("interpolated 20 → 80 % CPU"), "{row}");
        assert!(row.contains("20.0 KiB"), "{row}");
        let janus = md
            .lines()
            .find(|l| l.starts_with("| janus | fanout | 1 × 500 |"))
            .unwrap();
        assert!(janus.contains("| 90,000 | 15 % | — |"), "{janus}");
        assert!(
            md.contains("| ferrosfu | audio-meeting | 1 × 100 | 300,000 | n/a | n/a |"),
            "{md}"
        );
        assert!(
            md.contains("≥ 75 % of the raw limit per core: 75 % — met"),
            "{md}"
        );
        assert!(md.contains("≥ 2× Janus: 5.00× — met"), "{md}");
        assert!(
            md.contains("p99 latency ≤ 1000 µs at 50 % load: 400 µs"),
            "{md}"
        );
        // Per-run tables: every step, the generator-bound one flagged.
        assert!(md.contains("## ferrosfu — fanout (AES_CM_128_HMAC_SHA1_80)"));
        assert!(md.contains("- janus note"));
        let bound = md.lines().find(|l| l.starts_with("| 1 | 1000 |")).unwrap();
        assert!(bound.ends_with("| yes |"), "{bound}");
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| 1 | 500 |")).count(),
            3
        );
        for png in [
            "pps_vs_cpu.png",
            "forwarded_vs_offered.png",
            "latency.png",
            "latency-audio-meeting.png",
        ] {
            let bytes = std::fs::read(dir.join(png)).unwrap_or_else(|e| panic!("{png}: {e}\n{md}"));
            assert!(
                bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"),
                "{png}: {} bytes",
                bytes.len()
            );
            assert!(md.contains(&format!("![{png}]({png})")));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
