//! `/metrics`: Prometheus exposition (OpenMetrics text) built at scrape time from the pool.

use std::sync::atomic::{AtomicU64, Ordering};

use ferrosfu_fbs::ResourceUsage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::lifecycle::Phase;
use crate::pool::WorkerInfo;

pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CoreLabel {
    core: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabel {
    core: String,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// Renders the exposition for the given pool state; `usage` is the resource usage of each
/// running worker, by core.
pub(crate) fn render(
    phase: Phase,
    workers: &[WorkerInfo],
    usage: &[(u32, ResourceUsage)],
) -> String {
    let mut reg = Registry::default();

    let phase_g = Family::<PhaseLabel, Gauge>::default();
    for p in [
        Phase::Starting,
        Phase::Running,
        Phase::Draining,
        Phase::Stopped,
    ] {
        phase_g
            .get_or_create(&PhaseLabel { phase: p.as_str() })
            .set(i64::from(p == phase));
    }
    reg.register(
        "ferrosfu_lifecycle_phase",
        "1 for the supervisor's current lifecycle phase",
        phase_g,
    );

    let up = Family::<CoreLabel, Gauge>::default();
    let restarts = Family::<CoreLabel, Counter>::default();
    let pid = Family::<CoreLabel, Gauge>::default();
    let channel_errors = Family::<CoreLabel, Gauge>::default();
    let timeouts = Family::<CoreLabel, Gauge>::default();
    for w in workers {
        let l = CoreLabel {
            core: w.core.to_string(),
        };
        up.get_or_create(&l).set(i64::from(w.worker.is_some()));
        restarts.get_or_create(&l).inc_by(u64::from(w.restarts));
        if let Some(worker) = &w.worker {
            pid.get_or_create(&l).set(i64::from(worker.pid()));
            let stats = worker.channel().stats();
            channel_errors.get_or_create(&l).set(load(&stats.errors));
            timeouts.get_or_create(&l).set(load(&stats.timeouts));
        }
    }
    reg.register(
        "ferrosfu_worker_up",
        "1 when the worker of this core is running",
        up,
    );
    reg.register(
        "ferrosfu_worker_restarts",
        "Times the worker of this core was restarted after dying",
        restarts,
    );
    reg.register(
        "ferrosfu_worker_pid",
        "Process id of the worker of this core",
        pid,
    );
    reg.register(
        "ferrosfu_worker_channel_errors",
        "Undecodable or rejected channel frames, either direction, since this worker started",
        channel_errors,
    );
    reg.register(
        "ferrosfu_worker_request_timeouts",
        "Channel requests that timed out since this worker started",
        timeouts,
    );

    let cpu = Family::<CpuLabel, Gauge<f64, AtomicU64>>::default();
    let rss = Family::<CoreLabel, Gauge>::default();
    for (core, u) in usage {
        let core = core.to_string();
        cpu.get_or_create(&CpuLabel {
            core: core.clone(),
            mode: "user",
        })
        .set(u.ru_utime as f64 / 1e6);
        cpu.get_or_create(&CpuLabel {
            core: core.clone(),
            mode: "system",
        })
        .set(u.ru_stime as f64 / 1e6);
        rss.get_or_create(&CoreLabel { core })
            .set(i64::try_from(u.ru_maxrss.saturating_mul(1024)).unwrap_or(i64::MAX));
    }
    reg.register(
        "ferrosfu_worker_cpu_seconds",
        "CPU time used by the current worker process of this core",
        cpu,
    );
    reg.register(
        "ferrosfu_worker_max_rss_bytes",
        "Peak resident set size of the worker of this core",
        rss,
    );

    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)
        .expect("writing to a String cannot fail");
    out
}

fn load(a: &AtomicU64) -> i64 {
    i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
}
