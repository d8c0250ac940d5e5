//! The comparisons of a report: what each saturation search found and how the target held the
//! overload, and per-step ratios of run pairs (a build against its `-before` baseline, ferrosfu
//! against mediasoup).

use std::fmt::Write as _;

use super::{
    GOAL_OVERLOAD_KEPT_PERCENT, MAX_LOSS_PERCENT, int, load_key, scenario_cell, scenario_name,
};
use crate::types::{Phase, Results, Run, Saturation, Target};

/// What the saturation searches found, and how each target held the overload.
pub(super) fn saturation(md: &mut String, results: &Results) {
    let runs: Vec<(&Run, &Saturation)> = results
        .runs
        .iter()
        .filter_map(|r| Some((r, r.saturation.as_ref()?)))
        .collect();
    let Some((_, first)) = runs.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "\n## Saturation and overload\n\nSaturated: {}. The subscriber count doubles until a step \
         saturates, then bisects; the peak is the highest median forwarded rate of the search. The \
         overload step offers 1.5× the saturating subscriber count; *kept* = its forwarded pkt/s \
         ÷ the peak (goal: ≥ {GOAL_OVERLOAD_KEPT_PERCENT:.0} %, reported, not enforced). \
         While the generator samples decryption (its core is short), received packets are counted \
         by arrival: right after a saturated step a target draining its backlog can show more \
         forwarded than offered.\n",
        first.criterion
    );
    md.push_str(
        "| run | scenario | last unsaturated subs | saturating subs | peak forwarded pkt/s (at subs) | \
         overload subs | overload forwarded pkt/s | kept % of peak | ≥ 95 % |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (run, s) in runs {
        let opt = |v: Option<u32>| v.map_or("—".to_owned(), |v| v.to_string());
        let kept = s.overload_kept_percent;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} |",
            run.label(),
            scenario_name(run.scenario),
            s.last_ok_subscribers,
            opt(s.saturating_subscribers),
            int(s.peak_forwarded_pps),
            s.peak_at_subscribers,
            opt(s.overload_subscribers),
            s.overload_forwarded_pps.map_or("—".into(), int),
            kept.map_or("—".into(), |k| format!("{k:.1} %")),
            match (kept, &s.stopped) {
                (_, Some(why)) => format!("no overload step: {why}"),
                (Some(k), None) if k >= GOAL_OVERLOAD_KEPT_PERCENT => "met".into(),
                (Some(_), None) => "not met".into(),
                (None, None) => "—".into(),
            },
        );
    }
}

/// Pairs of runs compared step by step: a build against its `-before` baseline, ferrosfu
/// against mediasoup.
fn pairs(results: &Results) -> Vec<(&Run, &Run)> {
    let mut out = Vec::new();
    for a in &results.runs {
        for b in &results.runs {
            let bitrate = |r: &Run| r.steps.first().map(|s| s.bitrate_bps);
            if a.scenario != b.scenario || bitrate(a) != bitrate(b) {
                continue;
            }
            let baseline = b.label() == format!("{}-before", a.label());
            let versus_mediasoup = a.label() == "ferrosfu" && b.target == Target::Mediasoup;
            if baseline || versus_mediasoup {
                out.push((a, b));
            }
        }
    }
    out
}

/// Per-step ratios of the pairs: pkt/s per core, forwarded pkt/s, p99, at every load both
/// measured (medians; "overlap" when the min–max ranges of pkt/s per core overlap, i.e. the
/// difference is within this run's noise).
pub(super) fn ratios(md: &mut String, results: &Results) {
    let pairs = pairs(results);
    if pairs.is_empty() {
        return;
    }
    md.push_str(
        "\n## Ratios per step\n\nA ÷ B at the same publishers × subscribers, medians of the \
         repeats; *ranges* says whether the min–max ranges of pkt/s per core overlap (the \
         difference is within this run's noise); a step where one side lost ≥ 1 % (saturated) \
         says so.\n",
    );
    for (a, b) in pairs {
        let _ = writeln!(
            md,
            "\n### {} ÷ {} — {}",
            a.label(),
            b.label(),
            scenario_cell(a),
        );
        let mut rows = Vec::new();
        let mut lowest: Option<(f64, u32)> = None;
        let mut seen = Vec::new();
        for sa in a.steps.iter().filter(|s| s.phase == Phase::Fixed) {
            if seen.contains(&load_key(sa)) {
                continue;
            }
            let Some(sb) = b
                .steps
                .iter()
                .find(|s| s.phase == Phase::Fixed && load_key(s) == load_key(sa))
            else {
                continue;
            };
            seen.push(load_key(sa));
            let div = |x: f64, y: f64| if y > 0.0 { x / y } else { f64::NAN };
            let r = div(sa.pps_per_core, sb.pps_per_core);
            if r.is_finite() && lowest.is_none_or(|(l, _)| r < l) {
                lowest = Some((r, sa.subscribers));
            }
            let overlap = match (sa.spread, sb.spread) {
                (Some(x), Some(y)) => {
                    if x.pps_per_core.max >= y.pps_per_core.min
                        && y.pps_per_core.max >= x.pps_per_core.min
                    {
                        "overlap"
                    } else {
                        "apart"
                    }
                }
                _ => "—",
            };
            let mut bound = String::new();
            if sa.generator_bound || sb.generator_bound {
                bound.push_str(" (gen-bound)");
            }
            for (run, st) in [(a, sa), (b, sb)] {
                if st.loss_percent >= MAX_LOSS_PERCENT {
                    let _ = write!(bound, " ({} lost {:.0} %)", run.label(), st.loss_percent);
                }
            }
            rows.push(format!(
                "| {} × {}{bound} | {} | {} | {} | {} | {} | {overlap} |",
                sa.publishers,
                sa.subscribers,
                int(sa.pps_per_core),
                int(sb.pps_per_core),
                fixed2(r),
                fixed2(div(sa.forwarded_pps, sb.forwarded_pps)),
                fixed2(div(sa.latency.p99_us, sb.latency.p99_us)),
            ));
        }
        if !rows.is_empty() {
            let _ = writeln!(
                md,
                "\n| pubs × subs | {a} pkt/s per core | {b} pkt/s per core | ratio pkt/s per core | \
                 ratio forwarded pkt/s | ratio p99 | ranges |\n|---|---:|---:|---:|---:|---:|---|\n{}",
                rows.join("\n"),
                a = a.label(),
                b = b.label(),
            );
        }
        if let Some((l, n)) = lowest {
            let _ = writeln!(
                md,
                "\nLowest pkt/s-per-core ratio over the fixed steps: {l:.2} (at {n} subscribers); \
                 {} ÷ {} ≥ 1.00 at every step: {}.",
                a.label(),
                b.label(),
                if l >= 1.0 { "yes" } else { "no" }
            );
        }
        if let (Some(x), Some(y)) = (&a.saturation, &b.saturation)
            && y.peak_forwarded_pps > 0.0
        {
            let _ = writeln!(
                md,
                "\nSaturation peak: {} vs {} pkt/s ({:.2}); overload kept {} vs {}.",
                int(x.peak_forwarded_pps),
                int(y.peak_forwarded_pps),
                x.peak_forwarded_pps / y.peak_forwarded_pps,
                x.overload_kept_percent
                    .map_or("—".into(), |k| format!("{k:.1} %")),
                y.overload_kept_percent
                    .map_or("—".into(), |k| format!("{k:.1} %")),
            );
        }
    }
}

/// A ratio with two decimals, "—" when undefined (a zero denominator).
fn fixed2(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "—".into()
    }
}
