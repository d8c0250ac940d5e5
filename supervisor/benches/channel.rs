//! Channel round trips against one real worker process: `worker.dump` request -> response.
//!
//! Run with `scripts/bench channel` (builds the release worker first). The bench process is
//! pinned to one core and the worker to another, so the figure is the channel's, not the
//! scheduler's.
//!
//! - `sequential`: one request in flight (latency-bound: two pipe hops and two wake-ups).
//! - `pipelined/N`: N requests in flight, as a loaded supervisor issues them; the worker answers
//!   a whole read's worth of requests with one write.
//! - `raw_pipe_echo`: the floor for `sequential` measured in the same run: a blocking thread
//!   pinned to the worker's core echoes a 64-byte message over a pipe pair, no runtime, no
//!   encoding. `sequential` / `raw_pipe_echo` is the channel's overhead over the kernel's.

use std::io::{Read, Write};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrosfu::{Config, Worker, WorkerSettings};

fn cores() -> (usize, usize) {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    match ids.as_slice() {
        [a, b, ..] => (a.id, b.id),
        [a] => (a.id, a.id),
        [] => (0, 0),
    }
}

fn bench(c: &mut Criterion) {
    let (bench_core, worker_core) = cores();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bin = Config::default().resolve_worker_bin();
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build --release -p ferrosfu-worker) or set FERROSFU_WORKER_BIN",
        bin.display()
    );
    let mut settings = WorkerSettings::new(bin);
    settings.core = Some(worker_core as u32);
    let worker = rt.block_on(Worker::spawn(&settings)).expect("worker");
    // Pin the bench only now: the worker inherits the affinity mask of its parent.
    core_affinity::set_for_current(core_affinity::CoreId { id: bench_core });

    let mut g = c.benchmark_group("channel_round_trip");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequential", |b| {
        b.to_async(&rt)
            .iter(|| async { worker.dump().await.expect("dump") });
    });
    for depth in [16usize, 64, 256] {
        g.throughput(Throughput::Elements(depth as u64));
        g.bench_with_input(BenchmarkId::new("pipelined", depth), &depth, |b, &depth| {
            b.to_async(&rt).iter(|| async {
                let calls: Vec<_> = (0..depth)
                    .map(|_| {
                        let w = worker.clone();
                        tokio::spawn(async move { w.dump().await })
                    })
                    .collect();
                for c in calls {
                    c.await.expect("task").expect("dump");
                }
            });
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_pipe_echo", |b| {
        let (to_echo_r, to_echo_w) = nix::unistd::pipe().expect("pipe");
        let (from_echo_r, from_echo_w) = nix::unistd::pipe().expect("pipe");
        let echo = std::thread::spawn(move || {
            core_affinity::set_for_current(core_affinity::CoreId { id: worker_core });
            let (mut r, mut w) = (
                std::fs::File::from(to_echo_r),
                std::fs::File::from(from_echo_w),
            );
            let mut buf = [0u8; 64];
            while r.read_exact(&mut buf).is_ok() {
                if w.write_all(&buf).is_err() {
                    return;
                }
            }
        });
        let (mut w, mut r) = (
            std::fs::File::from(to_echo_w),
            std::fs::File::from(from_echo_r),
        );
        let mut buf = [7u8; 64];
        b.iter(|| {
            w.write_all(&buf).expect("write");
            r.read_exact(&mut buf).expect("read");
        });
        drop(w);
        echo.join().expect("echo thread");
    });
    g.finish();
    rt.block_on(worker.close(Duration::from_secs(3)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
