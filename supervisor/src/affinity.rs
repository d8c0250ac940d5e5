//! Pinning the supervisor's own threads (`[supervisor] cores`): the main thread before the
//! runtime starts (threads it creates inherit its mask) and every runtime and blocking thread as
//! it starts (`on_thread_start`), so none of them runs on a worker's core.
//!
//! Workers and recorder children are forked from these threads and inherit the mask; each pins
//! itself (or is pinned in `pre_exec`) to its own core right away, and the cores the config may
//! name were read before pinning (see `config::CoreList::resolve`).

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

/// Restricts the calling thread to `cores` (Linux: pid 0 of `sched_setaffinity` is the calling
/// thread).
pub fn pin_current_thread(cores: &[u32]) -> Result<(), String> {
    let mut set = CpuSet::new();
    for &c in cores {
        set.set(c as usize).map_err(|e| format!("core {c}: {e}"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| format!("sched_setaffinity {cores:?}: {e}"))
}

/// A tokio runtime builder whose threads (workers and blocking pool) pin themselves to `cores`;
/// `None` leaves them unpinned.
pub fn runtime_builder(cores: Option<Vec<u32>>) -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(cores) = cores {
        b.on_thread_start(move || {
            if let Err(e) = pin_current_thread(&cores) {
                // The main thread was pinned with the same set already: this cannot fail
                // where that succeeded, short of a cpuset change in between.
                tracing::warn!("cannot pin a supervisor thread: {e}");
            }
        });
    }
    b
}
