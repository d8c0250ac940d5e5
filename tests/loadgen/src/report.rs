//! `results.json` → `README.md` (summary and one table per run) and PNG plots
//! (`pps_vs_cpu.png`, `latency.png`, and `latency-<scenario>.png` for scenarios other than
//! fanout), all in the results directory.
//!
//! Figures compared across targets are taken at the same load (same publishers and subscribers)
//! and only from steps where the generator kept up; a generator-bound step is shown in the tables
//! but never used as a figure of the system under test without a mark.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;

use crate::types::{Latency, Profile, Results, Run, Scenario, Step, Target};

/// The TTF file registered as "sans-serif" for the plots (`fonts-dejavu-core`).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Goals of issue 6 (recorded, not enforced).
const GOAL_RAW_PERCENT: f64 = 75.0;
const GOAL_JANUS_RATIO: f64 = 2.0;
const GOAL_P99_US: f64 = 1000.0;

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
    match plots(&results, dir) {
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

fn target_name(t: Target) -> &'static str {
    match t {
        Target::Ferrosfu => "ferrosfu",
        Target::Janus => "janus",
        Target::Raw => "raw",
    }
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
fn load_key(s: &Step) -> (u32, u32) {
    (s.publishers, s.subscribers)
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

fn find_run(results: &Results, target: Target, scenario: Scenario) -> Option<&Run> {
    results
        .runs
        .iter()
        .find(|r| r.target == target && r.scenario == scenario)
}

/// `value / reference` at the same load; when the reference is not measurable there (the
/// generator could not keep up, or the reference was saturated and lost packets), against the
/// reference's best measurable step instead, with a mark. `None` without a reference step.
fn versus(results: &Results, reference: Target, run: &Run, step: &Step) -> Option<(f64, bool)> {
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

/// The whole markdown document (without the plot section).
pub fn markdown(results: &Results) -> String {
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
         Summaries use the highest measurable step.\n"
    );

    md.push_str("## Summary\n\n");
    md.push_str(
        "| target | scenario | at (pubs × subs) | pkt/s per core | % of raw limit | ratio to Janus | \
         latency p50 / p99 / p99.9 µs at ~50 % load | RSS per consumer |\n",
    );
    md.push_str("|---|---|---|---:|---:|---:|---|---:|\n");
    for run in &results.runs {
        let Some(step) = best_step(run) else {
            let _ = writeln!(
                md,
                "| {} | {} | every step generator-bound | — | — | — | — | — |",
                target_name(run.target),
                scenario_name(run.scenario)
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
        let raw = match run.target {
            Target::Raw => "—".into(),
            _ => pct(versus(results, Target::Raw, run, step), 100.0, " %", 0),
        };
        let janus = match run.target {
            Target::Janus => "—".into(),
            _ => pct(versus(results, Target::Janus, run, step), 1.0, "×", 2),
        };
        let latency = latency_at_half_load(run)
            .map_or("—".into(), |(l, how)| format!("{} ({how})", lat(&l)));
        let _ = writeln!(
            md,
            "| {} | {} | {} × {} | {} | {raw} | {janus} | {latency} | {} |",
            target_name(run.target),
            scenario_name(run.scenario),
            step.publishers,
            step.subscribers,
            int(step.pps_per_core),
            kib(step.rss_per_consumer_bytes),
        );
    }
    goals(&mut md, results);

    for run in &results.runs {
        let _ = writeln!(
            md,
            "\n## {} — {} ({})\n",
            target_name(run.target),
            scenario_name(run.scenario),
            profile_name(run.profile)
        );
        for n in &run.notes {
            let _ = writeln!(md, "- {n}");
        }
        if !run.notes.is_empty() {
            md.push('\n');
        }
        md.push_str(
            "| pubs | subs | expected pkt/s | forwarded pkt/s | SUT CPU % | pkt/s per core | loss % | \
             p50 µs | p99 µs | p99.9 µs | RSS per consumer | gen CPU % | gen-bound |\n",
        );
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for s in &run.steps {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.1} | {} | {:.3} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {} |",
                s.publishers,
                s.subscribers,
                int(s.expected_pps),
                int(s.forwarded_pps),
                s.sut_cpu_percent,
                int(s.pps_per_core),
                s.loss_percent,
                s.latency.p50_us,
                s.latency.p99_us,
                s.latency.p999_us,
                kib(s.rss_per_consumer_bytes),
                s.generator_cpu_percent,
                if s.generator_bound { "yes" } else { "no" },
            );
        }
    }
    md
}

/// Where ferrosfu's fanout stands against the goals of issue 6.
fn goals(md: &mut String, results: &Results) {
    let Some(run) = find_run(results, Target::Ferrosfu, Scenario::Fanout) else {
        return;
    };
    let Some(step) = best_step(run) else { return };
    let status = |ok: bool| if ok { "met" } else { "not met" };
    md.push_str("\nGoals (issue 6), ferrosfu fanout:\n");
    match versus(results, Target::Raw, run, step) {
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
    match versus(results, Target::Janus, run, step) {
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

// ---------------------------------------------------------------------------------------------
// Plots
// ---------------------------------------------------------------------------------------------

fn register_font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT)
            .map_err(|e| format!("{FONT}: {e} (apt-get install fonts-dejavu-core)"))?;
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // Leaked once per process: plotters keeps &'static font data.
            let data: &'static [u8] = Box::leak(bytes.clone().into_boxed_slice());
            plotters::style::register_font("sans-serif", style, data)
                .map_err(|_| format!("{FONT}: not a font"))?;
        }
        Ok(())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn color(run: &Run) -> RGBColor {
    match (run.target, run.scenario) {
        (Target::Ferrosfu, Scenario::Fanout) => RGBColor(31, 119, 180),
        (Target::Ferrosfu, Scenario::AudioMeeting) => RGBColor(23, 190, 207),
        (Target::Ferrosfu, Scenario::Meeting) => RGBColor(148, 103, 189),
        (Target::Janus, Scenario::Fanout) => RGBColor(214, 39, 40),
        (Target::Janus, _) => RGBColor(255, 127, 14),
        (Target::Raw, Scenario::Fanout) => RGBColor(44, 160, 44),
        (Target::Raw, _) => RGBColor(140, 86, 75),
    }
}

fn label(run: &Run) -> String {
    format!(
        "{} {}",
        target_name(run.target),
        scenario_name(run.scenario)
    )
}

type PlotResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Picks one percentile out of a [`Latency`].
type Percentile = fn(&Latency) -> f64;

/// Draws every plot; returns the file names written.
fn plots(results: &Results, dir: &Path) -> anyhow::Result<Vec<String>> {
    register_font()?;
    let mut files = Vec::new();
    let name = "pps_vs_cpu.png";
    plot_pps_vs_cpu(results, &dir.join(name)).map_err(|e| anyhow!("{name}: {e}"))?;
    files.push(name.to_owned());
    let mut scenarios: Vec<Scenario> = Vec::new();
    for r in &results.runs {
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario);
        }
    }
    for sc in scenarios {
        let name = match sc {
            Scenario::Fanout => "latency.png".to_owned(),
            other => format!("latency-{}.png", scenario_name(other)),
        };
        let runs: Vec<&Run> = results.runs.iter().filter(|r| r.scenario == sc).collect();
        plot_latency(&runs, scenario_name(sc), &dir.join(&name))
            .map_err(|e| anyhow!("{name}: {e}"))?;
        files.push(name);
    }
    Ok(files)
}

/// Forwarded pkt/s against CPU of the system under test, one line per run. Hollow markers:
/// generator-bound steps.
fn plot_pps_vs_cpu(results: &Results, path: &Path) -> PlotResult<()> {
    let all = results.runs.iter().flat_map(|r| &r.steps);
    let x_max = all.clone().map(|s| s.sut_cpu_percent).fold(100.0, f64::max) * 1.05;
    let y_max = all.map(|s| s.forwarded_pps).fold(1000.0, f64::max) * 1.1;
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Forwarded packets/s vs CPU of the system under test",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("CPU of the system under test (% of one core)")
        .y_desc("forwarded packets/s")
        .y_label_formatter(&|y| int(*y))
        .draw()?;
    for run in &results.runs {
        let c = color(run);
        let mut pts: Vec<(f64, f64, bool)> = run
            .steps
            .iter()
            .map(|s| (s.sut_cpu_percent, s.forwarded_pps, s.generator_bound))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))?
            .label(label(run))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&(x, y, bound)| {
            let style = if bound { c.stroke_width(2) } else { c.filled() };
            Circle::new((x, y), 4, style)
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}

/// p50 / p99 / p99.9 latency (log scale) against forwarded pkt/s: ferrosfu solid, the others
/// dashed; circles p50, triangles p99, crosses p99.9.
fn plot_latency(runs: &[&Run], scenario: &str, path: &Path) -> PlotResult<()> {
    let steps = runs.iter().flat_map(|r| &r.steps);
    let x_max = steps
        .clone()
        .map(|s| s.forwarded_pps)
        .fold(1000.0, f64::max)
        * 1.05;
    let y_max = steps
        .clone()
        .map(|s| {
            s.latency
                .p999_us
                .max(s.latency.p99_us)
                .max(s.latency.p50_us)
        })
        .fold(100.0, f64::max)
        * 2.0;
    let y_min = steps
        .map(|s| s.latency.p50_us)
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(y_max / 10.0)
        .max(2.0)
        / 2.0;
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency percentiles vs load ({scenario})"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("forwarded packets/s")
        .y_desc("latency (µs, log)")
        .x_label_formatter(&|x| int(*x))
        .y_label_formatter(&|y| int(*y))
        .draw()?;
    let percentiles: [(&str, Percentile); 3] = [
        ("p50", |l| l.p50_us),
        ("p99", |l| l.p99_us),
        ("p99.9", |l| l.p999_us),
    ];
    for run in runs {
        let c = color(run);
        let solid = run.target == Target::Ferrosfu;
        let mut steps: Vec<&Step> = run.steps.iter().collect();
        steps.sort_by(|a, b| a.forwarded_pps.total_cmp(&b.forwarded_pps));
        for (pi, (pname, get)) in percentiles.iter().enumerate() {
            let pts: Vec<(f64, f64)> = steps
                .iter()
                .map(|s| (s.forwarded_pps, get(&s.latency).max(y_min)))
                .collect();
            let style = c.stroke_width(if pi == 0 { 2 } else { 1 });
            let lbl = format!("{} {pname}", target_name(run.target));
            if solid {
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))?
                    .label(lbl)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            } else {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))?
                    .label(lbl)
                    .legend(move |(x, y)| {
                        plotters::element::DashedPathElement::new(
                            vec![(x, y), (x + 20, y)],
                            6,
                            4,
                            style,
                        )
                    });
            }
            match pi {
                0 => {
                    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
                }
                1 => {
                    chart
                        .draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 5, c.filled())))?;
                }
                _ => {
                    chart.draw_series(pts.iter().map(|&p| Cross::new(p, 4, c.stroke_width(2))))?;
                }
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Machine;

    fn step(subs: u32, cpu: f64, pps_per_core: f64, p99: f64, bound: bool) -> Step {
        let fwd = pps_per_core * cpu / 100.0;
        Step {
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
        let run = |target, steps| Run {
            target,
            scenario: Scenario::Fanout,
            profile: Profile::Cm80,
            notes: vec![format!("{} note", target_name(target))],
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
        for png in ["pps_vs_cpu.png", "latency.png", "latency-audio-meeting.png"] {
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
