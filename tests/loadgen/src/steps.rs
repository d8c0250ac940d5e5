//! The steps of one run: the fixed subscriber counts (`--subscribers`), then, with `--search`,
//! a saturation search and an overload step.
//!
//! Every step is measured `--repeat` times at the same load (the peers stay; one warm-up, then
//! back-to-back windows): each figure of the step is the median of its windows, and `spread`
//! holds their min–max.
//!
//! Search: the subscriber count doubles from `--search-start` until a step is saturated (median
//! loss > `--loss-limit` % or median SUT CPU ≥ `--cpu-limit` %), then bisects between the last
//! unsaturated and the first saturated count (peers are removed to go down) until the interval
//! is within `--search-tolerance` of the lower end. The peak is the highest median forwarded
//! rate of the search; the overload step then offers `--overload` × the saturating subscriber
//! count and reports what it forwards as a share of that peak.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::media::{EngineHandle, Window};
use crate::types::{Latency, Phase, Range, Run, Saturation, Spread, Step};
use crate::{LoadConfig, RunArgs, Target, stats};

/// Consumers the scenario should have at `n`.
pub(crate) fn expected_consumers(scenario: crate::types::Scenario, publishers: u32, n: u32) -> u32 {
    use crate::types::Scenario;
    match scenario {
        Scenario::Fanout | Scenario::AudioMeeting => n * publishers,
        // Every peer consumes the audio and video of every other.
        Scenario::Meeting => n * n.saturating_sub(1) * 2,
    }
}

/// Waits until every expected consumer got a packet; reports who did not.
async fn wait_ready(engine: &EngineHandle, want: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = engine.status().await?;
        let all_connected = s.connected == s.peers;
        if s.consumers >= want && s.flowing >= want && all_connected {
            return Ok(());
        }
        if Instant::now() > deadline {
            eprintln!(
                "loadgen: after {timeout:?}: {}/{} transports connected, {}/{want} consumers \
                 announced, {} receiving; waiting: {:?}; failed: {:?}; {} datagrams dropped",
                s.connected, s.peers, s.consumers, s.flowing, s.waiting, s.failed, s.dropped
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The saturation test of the search, on a step's medians.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) loss_percent: f64,
    pub(crate) cpu_percent: f64,
}

impl Limits {
    pub(crate) fn saturated(&self, s: &Step) -> bool {
        s.sut_cpu_percent >= self.cpu_percent || s.loss_percent > self.loss_percent
    }

    fn describe(&self) -> String {
        format!(
            "median loss > {} % or median SUT CPU ≥ {} %",
            self.loss_percent, self.cpu_percent
        )
    }
}

/// Where the search goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Measure(u32),
    /// Bracketed within the tolerance.
    Done,
    /// The cap was reached unsaturated.
    Capped,
}

/// Doubling, then bisection, over subscriber counts.
#[derive(Clone, Debug)]
pub(crate) struct Bisect {
    /// Largest count seen unsaturated, smallest seen saturated.
    pub(crate) lo: Option<u32>,
    pub(crate) hi: Option<u32>,
    tolerance: f64,
    max: u32,
}

impl Bisect {
    pub(crate) fn new(tolerance: f64, max: u32) -> Bisect {
        Bisect {
            lo: None,
            hi: None,
            tolerance,
            max,
        }
    }

    /// Records the outcome at `n` and says what to measure next.
    pub(crate) fn next(&mut self, n: u32, saturated: bool) -> Next {
        if saturated {
            self.hi = Some(self.hi.map_or(n, |h| h.min(n)));
        } else {
            self.lo = Some(self.lo.map_or(n, |l| l.max(n)));
        }
        match (self.lo, self.hi) {
            (Some(l), None) if l >= self.max => Next::Capped,
            (Some(l), None) => Next::Measure((l * 2).clamp(l + 1, self.max)),
            (None, Some(h)) if h <= 1 => Next::Done,
            (None, Some(h)) => Next::Measure(h / 2),
            (Some(l), Some(h)) => {
                let width = f64::from(h.saturating_sub(l));
                if h <= l + 1 || width <= self.tolerance * f64::from(l.max(1)) {
                    Next::Done
                } else {
                    Next::Measure(l + (h - l) / 2)
                }
            }
            (None, None) => Next::Done,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// One step out of its repeated windows: medians, min–max of the main figures.
pub(crate) fn aggregate(windows: &[Step], phase: Phase) -> Step {
    let Some(first) = windows.first() else {
        return Step {
            phase,
            ..Step::default()
        };
    };
    let med = |f: fn(&Step) -> f64| median(windows.iter().map(f).collect());
    let range = |f: fn(&Step) -> f64| Range::of(windows.iter().map(f));
    let bound = windows.iter().filter(|s| s.generator_bound).count();
    Step {
        phase,
        repeats: windows.len() as u32,
        spread: (windows.len() > 1).then(|| Spread {
            forwarded_pps: range(|s| s.forwarded_pps),
            pps_per_core: range(|s| s.pps_per_core),
            sut_cpu_percent: range(|s| s.sut_cpu_percent),
            loss_percent: range(|s| s.loss_percent),
            latency_p50_us: range(|s| s.latency.p50_us),
            latency_p99_us: range(|s| s.latency.p99_us),
        }),
        publishers: first.publishers,
        subscribers: first.subscribers,
        bitrate_bps: first.bitrate_bps,
        packet_size: first.packet_size,
        duration_s: med(|s| s.duration_s),
        sent_pps: med(|s| s.sent_pps),
        expected_pps: med(|s| s.expected_pps),
        forwarded_pps: med(|s| s.forwarded_pps),
        sut_cpu_percent: med(|s| s.sut_cpu_percent),
        pps_per_core: med(|s| s.pps_per_core),
        generator_cpu_percent: med(|s| s.generator_cpu_percent),
        loss_percent: med(|s| s.loss_percent),
        latency: Latency {
            p50_us: med(|s| s.latency.p50_us),
            p99_us: med(|s| s.latency.p99_us),
            p999_us: med(|s| s.latency.p999_us),
        },
        sut_rss_bytes: windows.last().map_or(0, |s| s.sut_rss_bytes),
        rss_per_consumer_bytes: med(|s| s.rss_per_consumer_bytes),
        // Like every other figure: as the majority of the windows.
        generator_bound: 2 * bound > windows.len(),
    }
}

/// Drives one target through its steps.
pub(crate) struct Runner<'a, T: Target> {
    a: &'a RunArgs,
    cfg: &'a LoadConfig,
    engine: &'a EngineHandle,
    target: T,
    rss0: HashMap<u32, u64>,
    notes: Vec<String>,
    steps: Vec<Step>,
    /// Subscribers the target has now.
    size: u32,
}

impl<'a, T: Target> Runner<'a, T> {
    pub(crate) fn new(
        a: &'a RunArgs,
        cfg: &'a LoadConfig,
        engine: &'a EngineHandle,
        target: T,
    ) -> Self {
        Runner {
            a,
            cfg,
            engine,
            target,
            rss0: HashMap::new(),
            notes: a.label.iter().cloned().collect(),
            steps: Vec::new(),
            size: 0,
        }
    }

    /// Runs every step; the run, even when a step failed (then with the error after it).
    pub(crate) async fn run(mut self) -> (Run, Result<()>) {
        let result = self.all_steps().await;
        let mut saturation = None;
        let r = match result {
            Ok(s) => {
                saturation = s;
                Ok(())
            }
            Err(e) => Err(e),
        };
        let a = self.a;
        self.notes.extend(self.target.notes());
        self.notes.push(format!(
            "generator: one UDP socket, media thread + signaling pinned to core {}; profile {:?}",
            a.core, a.profile
        ));
        if a.repeat > 1 {
            self.notes.push(format!(
                "every step measured {} times ({:.0} s windows after one warm-up): medians, \
                 min–max in brackets",
                a.repeat, a.duration
            ));
        }
        if let Some(ms) = a.rtcp_interval_ms.filter(|&ms| ms > 0) {
            self.notes.push(format!(
                "subscribers send an SRTCP receiver report every {ms} ms"
            ));
        }
        self.target.close().await;
        let run = Run {
            name: a
                .name
                .clone()
                .unwrap_or_else(|| a.target.as_str().to_owned()),
            target: a.target,
            scenario: a.scenario,
            profile: a.profile,
            notes: self.notes,
            steps: self.steps,
            saturation,
        };
        (run, r)
    }

    async fn all_steps(&mut self) -> Result<Option<Saturation>> {
        self.target.prepare().await?;
        // RSS before any subscriber.
        for p in self.candidates().await? {
            self.rss0.insert(p, stats::proc_sample(p)?.rss_bytes);
        }
        for n in self.a.fixed_steps() {
            let s = self.step(n, Phase::Fixed).await?;
            self.steps.push(s);
        }
        if !self.a.search {
            return Ok(None);
        }
        self.search().await.map(Some)
    }

    async fn search(&mut self) -> Result<Saturation> {
        let a = self.a;
        let limits = Limits {
            loss_percent: a.loss_limit,
            cpu_percent: a.cpu_limit,
        };
        let mut bisect = Bisect::new(a.search_tolerance, a.search_max);
        let mut sat = Saturation {
            criterion: limits.describe(),
            ..Saturation::default()
        };
        let mut n = a.search_start.max(1);
        let mut bound_steps = 0;
        loop {
            let s = self.step(n, Phase::Search).await?;
            let saturated = limits.saturated(&s);
            if s.forwarded_pps > sat.peak_forwarded_pps {
                sat.peak_forwarded_pps = s.forwarded_pps;
                sat.peak_at_subscribers = n;
            }
            if s.generator_bound {
                // Shown in the tables; on a shared machine the run delay alone marks steps, so
                // the search goes on and the report says how many steps were marked.
                bound_steps += 1;
            }
            self.steps.push(s);
            match bisect.next(n, saturated) {
                Next::Measure(next) => n = next,
                Next::Done => break,
                Next::Capped => {
                    sat.stopped = Some(format!("not saturated at the cap of {n} subscribers"));
                    break;
                }
            }
        }
        if bound_steps > 0 {
            self.notes.push(format!(
                "search: {bound_steps} steps generator-bound (see the table): their loss may be \
                 the generator's"
            ));
        }
        sat.last_ok_subscribers = bisect.lo.unwrap_or(0);
        sat.saturating_subscribers = bisect.hi;
        eprintln!(
            "loadgen: saturation: last unsaturated {:?}, saturating {:?}, peak {:.0} pkt/s at {}",
            bisect.lo, bisect.hi, sat.peak_forwarded_pps, sat.peak_at_subscribers
        );
        if let Some(h) = bisect.hi
            && a.overload > 0.0
            && sat.stopped.is_none()
        {
            let n = (f64::from(h) * a.overload).ceil() as u32;
            let s = self.step(n, Phase::Overload).await?;
            sat.overload_subscribers = Some(n);
            sat.overload_forwarded_pps = Some(s.forwarded_pps);
            if sat.peak_forwarded_pps > 0.0 {
                sat.overload_kept_percent = Some(s.forwarded_pps * 100.0 / sat.peak_forwarded_pps);
            }
            eprintln!(
                "loadgen: overload {n} subscribers ({}× {h}): {:.0} pkt/s = {:.1} % of the peak",
                a.overload,
                s.forwarded_pps,
                sat.overload_kept_percent.unwrap_or(0.0)
            );
            self.steps.push(s);
        }
        Ok(sat)
    }

    async fn candidates(&self) -> Result<Vec<u32>> {
        match self.a.sut_pid {
            Some(p) => Ok(vec![p]),
            None => self.target.sut_pids().await,
        }
    }

    /// Brings the target to `n` subscribers, waits for media, warms up, measures `--repeat`
    /// windows: the aggregated step.
    async fn step(&mut self, n: u32, phase: Phase) -> Result<Step> {
        let a = self.a;
        let t_join = Instant::now();
        if n < self.size {
            self.target.shrink(n).await?;
        } else {
            self.target.grow(n).await?;
        }
        self.size = n;
        let publishers = self.target.publishers();
        let want = expected_consumers(self.cfg.scenario, publishers, n);
        let timeout = a.ready_timeout.map_or(
            Duration::from_secs(20) + Duration::from_millis(40) * n,
            Duration::from_secs_f64,
        );
        wait_ready(self.engine, want, timeout).await?;
        let joined_in = t_join.elapsed();

        // Warm-up; the candidate that burns the most CPU meanwhile is the one forwarding.
        let candidates = self.candidates().await?;
        let before: Vec<_> = candidates
            .iter()
            .map(|p| stats::proc_sample(*p).map(|s| s.cpu).unwrap_or_default())
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
        let sut = candidates
            .iter()
            .zip(before)
            .max_by_key(|(p, c0)| {
                stats::proc_sample(**p)
                    .map(|s| s.cpu.saturating_sub(*c0))
                    .unwrap_or_default()
            })
            .map(|(p, _)| *p)
            .context("no process to measure (give --sut-pid)")?;
        let mut windows = Vec::new();
        for rep in 0..a.repeat.max(1) {
            windows.push(self.window(n, publishers, sut, rep, joined_in).await?);
        }
        Ok(aggregate(&windows, phase))
    }

    /// One measurement window at the current load.
    async fn window(
        &mut self,
        n: u32,
        publishers: u32,
        sut: u32,
        rep: u32,
        joined_in: Duration,
    ) -> Result<Step> {
        let a = self.a;
        let s0 = stats::proc_sample(sut)?;
        let g0 = stats::process_cpu();
        let u0 = stats::udp_counters().unwrap_or_default();
        let t0 = Instant::now();
        eprintln!(
            "loadgen: measuring n={n} pubs={publishers} for {:.0} s (window {}/{})",
            a.duration,
            rep + 1,
            a.repeat.max(1)
        );
        self.engine.start_window().await?;
        tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
        let w = self.engine.end_window().await?;
        let wall = t0.elapsed().as_secs_f64();
        let s1 = stats::proc_sample(sut)?;
        let g1 = stats::process_cpu();
        let u1 = stats::udp_counters().unwrap_or_default();
        let status = self.engine.status().await?;
        let step = step_of(
            self.cfg,
            publishers,
            n,
            &w,
            StepSamples {
                wall,
                sut_cpu: s1.cpu.saturating_sub(s0.cpu),
                gen_cpu: g1.saturating_sub(g0),
                sut_rss: s1.rss_bytes,
                rss0: self.rss0.get(&sut).copied().unwrap_or(s1.rss_bytes),
                consumers: status.consumers,
            },
        );
        let rcvbuf = u1.rcvbuf_errors.saturating_sub(u0.rcvbuf_errors);
        eprintln!(
            "loadgen: {} {:?} n={n} pubs={publishers}: forwarded {:.0} pkt/s (expected \
             {:.0}, loss {:.2} %, seq gaps {}) | SUT pid {sut} CPU {:.1} % => {:.0} pkt/s \
             per core | latency p50 {:.0} us p99 {:.0} us p99.9 {:.0} us max {} us ({} \
             samples) | generator CPU {:.1} % (engine {:.1} %, waited {:.0} ms for a CPU, decrypt 1/{}) rx drops {} \
             | RSS {:.1} MiB, {:.1} KiB/consumer | system RcvbufErrors +{rcvbuf} | joined \
             in {:.1} s{}",
            a.name.as_deref().unwrap_or(a.target.as_str()),
            a.scenario,
            step.forwarded_pps,
            step.expected_pps,
            step.loss_percent,
            w.seq_gap_lost,
            step.sut_cpu_percent,
            step.pps_per_core,
            step.latency.p50_us,
            step.latency.p99_us,
            step.latency.p999_us,
            w.latency_max_us,
            w.latency_samples,
            step.generator_cpu_percent,
            w.engine_cpu.as_secs_f64() * 100.0 / wall,
            w.engine_run_delay.as_secs_f64() * 1000.0,
            w.decrypt_every_max,
            w.rx_drops,
            step.sut_rss_bytes as f64 / 1048576.0,
            step.rss_per_consumer_bytes / 1024.0,
            joined_in.as_secs_f64(),
            if step.generator_bound {
                " | GENERATOR-BOUND"
            } else {
                ""
            },
        );
        if w.decrypt_every_max > 1 && rep == 0 {
            self.notes.push(format!(
                "n={n}: generator decrypted 1 packet in {} per stream (latency sampled; loss \
                 from RTP headers)",
                w.decrypt_every_max
            ));
        }
        if w.srtp_failures > 0 || w.unknown_ssrc > 0 || w.send_errors > 0 {
            self.notes.push(format!(
                "n={n}: {} SRTP failures, {} packets of unknown SSRC, {} send errors",
                w.srtp_failures, w.unknown_ssrc, w.send_errors
            ));
        }
        Ok(step)
    }
}

struct StepSamples {
    wall: f64,
    sut_cpu: Duration,
    gen_cpu: Duration,
    sut_rss: u64,
    rss0: u64,
    consumers: u32,
}

fn step_of(cfg: &LoadConfig, publishers: u32, n: u32, w: &Window, s: StepSamples) -> Step {
    let secs = w.wall.as_secs_f64().max(1e-9);
    let sut_cpu_percent = s.sut_cpu.as_secs_f64() * 100.0 / s.wall;
    let generator_cpu_percent = s.gen_cpu.as_secs_f64() * 100.0 / s.wall;
    let forwarded_pps = w.received as f64 / secs;
    let loss_percent = if w.expected > 0 {
        (w.expected.saturating_sub(w.received)) as f64 * 100.0 / w.expected as f64
    } else {
        0.0
    };
    Step {
        phase: Phase::Fixed,
        repeats: 1,
        spread: None,
        publishers,
        subscribers: n,
        bitrate_bps: cfg.bitrate,
        packet_size: cfg.packet_size as u32,
        duration_s: secs,
        sent_pps: w.sent as f64 / secs,
        expected_pps: w.expected as f64 / secs,
        forwarded_pps,
        sut_cpu_percent,
        pps_per_core: if sut_cpu_percent > 0.0 {
            forwarded_pps * 100.0 / sut_cpu_percent
        } else {
            0.0
        },
        generator_cpu_percent,
        loss_percent,
        latency: w.latency,
        sut_rss_bytes: s.sut_rss,
        rss_per_consumer_bytes: if s.consumers > 0 {
            s.sut_rss.saturating_sub(s.rss0) as f64 / f64::from(s.consumers)
        } else {
            0.0
        },
        // Busy, dropping, or kept off its core by other processes for > 10 % of the window.
        generator_bound: generator_cpu_percent >= 90.0
            || w.rx_drops > 0
            || w.engine_run_delay.as_secs_f64() > 0.1 * s.wall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_then_bisecting() {
        let mut b = Bisect::new(0.2, 10_000);
        // Saturates from 700 on.
        let sat = |n: u32| n >= 700;
        let mut n = 100;
        let mut seen = vec![];
        loop {
            seen.push(n);
            match b.next(n, sat(n)) {
                Next::Measure(m) => n = m,
                Next::Done => break,
                Next::Capped => panic!("capped"),
            }
        }
        assert_eq!(seen, [100, 200, 400, 800, 600, 700]);
        assert_eq!((b.lo, b.hi), (Some(600), Some(700)));
    }

    #[test]
    fn saturated_at_the_start_halves() {
        let mut b = Bisect::new(0.2, 10_000);
        assert_eq!(b.next(400, true), Next::Measure(200));
        assert_eq!(b.next(200, false), Next::Measure(300));
    }

    #[test]
    fn capped() {
        let mut b = Bisect::new(0.2, 300);
        assert_eq!(b.next(200, false), Next::Measure(300));
        assert_eq!(b.next(300, false), Next::Capped);
    }

    fn window(fwd: f64, cpu: f64, loss: f64, bound: bool) -> Step {
        Step {
            subscribers: 10,
            forwarded_pps: fwd,
            sut_cpu_percent: cpu,
            loss_percent: loss,
            generator_bound: bound,
            ..Step::default()
        }
    }

    #[test]
    fn medians_and_spread() {
        let s = aggregate(
            &[
                window(100.0, 50.0, 0.0, false),
                window(300.0, 10.0, 2.0, true),
                window(200.0, 30.0, 1.0, false),
            ],
            Phase::Search,
        );
        assert_eq!(s.repeats, 3);
        assert_eq!(s.forwarded_pps, 200.0);
        assert_eq!(s.sut_cpu_percent, 30.0);
        assert_eq!(s.loss_percent, 1.0);
        assert!(!s.generator_bound);
        let sp = s.spread.expect("three windows");
        assert_eq!(
            sp.forwarded_pps,
            Range {
                min: 100.0,
                max: 300.0
            }
        );
        assert_eq!(sp.loss_percent, Range { min: 0.0, max: 2.0 });
        let l = Limits {
            loss_percent: 1.0,
            cpu_percent: 95.0,
        };
        assert!(!l.saturated(&s));
        assert!(l.saturated(&window(1.0, 96.0, 0.0, true)));
        assert!(l.saturated(&window(1.0, 50.0, 5.0, false)));
    }
}
