//! The PNG plots of a report: forwarded pkt/s against the SUT's CPU, forwarded against offered
//! pkt/s (saturation and overload), latency percentiles against load. Steps measured more than
//! once carry min–max bars.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::anyhow;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::{FONT, int, scenario_name};
use crate::types::{Latency, Range, Results, Run, Scenario, Step, Target};

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
    if run.label().ends_with("-before") {
        // A baseline build: grey beside its (coloured) current build.
        return RGBColor(110, 110, 110);
    }
    match (run.target, run.scenario) {
        (Target::Ferrosfu, Scenario::Fanout) => RGBColor(31, 119, 180),
        (Target::Ferrosfu, Scenario::AudioMeeting) => RGBColor(23, 190, 207),
        (Target::Ferrosfu, Scenario::Meeting) => RGBColor(148, 103, 189),
        (Target::Janus, Scenario::Fanout) => RGBColor(214, 39, 40),
        (Target::Janus, _) => RGBColor(255, 127, 14),
        (Target::Raw, Scenario::Fanout) => RGBColor(44, 160, 44),
        (Target::Raw, _) => RGBColor(140, 86, 75),
        (Target::Mediasoup, _) => RGBColor(227, 119, 194),
    }
}

fn label(run: &Run) -> String {
    let search = if run.saturation.is_some() {
        " (search)"
    } else {
        ""
    };
    format!("{} {}{search}", run.label(), scenario_name(run.scenario))
}

/// A min–max bar of `range` along y at `x`, or along x at `y`.
fn bar(vertical: bool, at: f64, range: Range, c: RGBColor) -> PathElement<(f64, f64)> {
    let pts = if vertical {
        vec![(at, range.min), (at, range.max)]
    } else {
        vec![(range.min, at), (range.max, at)]
    };
    PathElement::new(pts, c.stroke_width(1))
}

type PlotResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A white 960×600 PNG canvas at `path`.
fn canvas(path: &Path) -> PlotResult<Canvas<'_>> {
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// A linear chart from 0 to `x.0` × 0 to `y.0` on `root`, axes described by `x.1` / `y.1`,
/// y labels (and x labels when `x.2`) as integers with separators.
fn linear<'a, 'b>(
    root: &'a Canvas<'b>,
    caption: &str,
    x: (f64, &str, bool),
    y: (f64, &str),
) -> PlotResult<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x.0, 0f64..y.0)?;
    let thousands = |v: &f64| int(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x.1).y_desc(y.1).y_label_formatter(&thousands);
    if x.2 {
        mesh.x_label_formatter(&thousands);
    }
    mesh.draw()?;
    Ok(chart)
}

/// The legend at `pos` (labels of `font` px), then the file written.
fn finish<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, CT>,
    root: &Canvas<'_>,
    pos: SeriesLabelPosition,
    font: u32,
) -> PlotResult<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", font))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Picks one percentile out of a [`Latency`].
type Percentile = fn(&Latency) -> f64;

/// Draws every plot; returns the file names written.
pub(super) fn plots(results: &Results, dir: &Path) -> anyhow::Result<Vec<String>> {
    register_font()?;
    let mut files = Vec::new();
    let name = "pps_vs_cpu.png";
    plot_pps_vs_cpu(results, &dir.join(name)).map_err(|e| anyhow!("{name}: {e}"))?;
    files.push(name.to_owned());
    let name = "forwarded_vs_offered.png";
    plot_forwarded_vs_offered(results, &dir.join(name)).map_err(|e| anyhow!("{name}: {e}"))?;
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
    let root = canvas(path)?;
    let mut chart = linear(
        &root,
        "Forwarded packets/s vs CPU of the system under test",
        (x_max, "CPU of the system under test (% of one core)", false),
        (y_max, "forwarded packets/s"),
    )?;
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
        let spread = run.steps.iter().filter_map(|s| Some((s, s.spread?)));
        chart.draw_series(spread.clone().flat_map(|(s, sp)| {
            [
                bar(true, s.sut_cpu_percent, sp.forwarded_pps, c),
                bar(false, s.forwarded_pps, sp.sut_cpu_percent, c),
            ]
        }))?;
    }
    finish(&mut chart, &root, SeriesLabelPosition::UpperLeft, 15)
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
    let root = canvas(path)?;
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
        let solid = run.label() == "ferrosfu";
        let mut steps: Vec<&Step> = run.steps.iter().collect();
        steps.sort_by(|a, b| a.forwarded_pps.total_cmp(&b.forwarded_pps));
        for (pi, (pname, get)) in percentiles.iter().enumerate() {
            let pts: Vec<(f64, f64)> = steps
                .iter()
                .map(|s| (s.forwarded_pps, get(&s.latency).max(y_min)))
                .collect();
            let style = c.stroke_width(if pi == 0 { 2 } else { 1 });
            let lbl = format!("{} {pname}", run.label());
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
            let ranges = steps.iter().filter_map(|s| {
                let sp = s.spread?;
                let r = match pi {
                    0 => sp.latency_p50_us,
                    1 => sp.latency_p99_us,
                    _ => return None,
                };
                Some(bar(
                    true,
                    s.forwarded_pps,
                    Range {
                        min: r.min.max(y_min),
                        max: r.max.max(y_min),
                    },
                    c,
                ))
            });
            chart.draw_series(ranges)?;
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
    finish(&mut chart, &root, SeriesLabelPosition::LowerRight, 14)
}

/// Forwarded against offered pkt/s (what the subscribers would get without loss), one line per
/// run in load order, with min–max bars: where each target saturates, and what it keeps under
/// overload. The diagonal is "nothing lost"; squares mark overload steps.
fn plot_forwarded_vs_offered(results: &Results, path: &Path) -> PlotResult<()> {
    let all = results.runs.iter().flat_map(|r| &r.steps);
    let x_max = all.clone().map(|s| s.expected_pps).fold(1000.0, f64::max) * 1.05;
    let y_max = all
        .map(|s| s.spread.map_or(s.forwarded_pps, |sp| sp.forwarded_pps.max))
        .fold(1000.0, f64::max)
        * 1.1;
    let root = canvas(path)?;
    let mut chart = linear(
        &root,
        "Forwarded vs offered packets/s",
        (
            x_max,
            "offered packets/s (subscribers × what the publishers send)",
            true,
        ),
        (y_max, "forwarded packets/s (median, min–max)"),
    )?;
    let top = x_max.min(y_max);
    chart.draw_series(DashedLineSeries::new(
        vec![(0.0, 0.0), (top, top)],
        4,
        4,
        BLACK.mix(0.4).stroke_width(1),
    ))?;
    for run in &results.runs {
        let c = color(run);
        let mut steps: Vec<&Step> = run.steps.iter().collect();
        steps.sort_by(|a, b| a.expected_pps.total_cmp(&b.expected_pps));
        chart
            .draw_series(LineSeries::new(
                steps.iter().map(|s| (s.expected_pps, s.forwarded_pps)),
                c.stroke_width(2),
            ))?
            .label(label(run))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(steps.iter().map(|s| {
            let p = (s.expected_pps, s.forwarded_pps);
            let style = if s.generator_bound {
                c.stroke_width(2)
            } else {
                c.filled()
            };
            if s.phase == crate::types::Phase::Overload {
                EmptyElement::at(p) + Rectangle::new([(-5, -5), (5, 5)], style)
            } else {
                EmptyElement::at(p) + Rectangle::new([(-2, -2), (2, 2)], style)
            }
        }))?;
        chart.draw_series(
            steps
                .iter()
                .filter_map(|s| Some(bar(true, s.expected_pps, s.spread?.forwarded_pps, c))),
        )?;
    }
    finish(&mut chart, &root, SeriesLabelPosition::UpperLeft, 15)
}
