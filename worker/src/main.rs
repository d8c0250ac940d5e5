//! `ferrosfu-worker`: one media worker, pinned to one core, driven by the supervisor over the
//! channel on fd 3 (requests in) and fd 4 (responses, notifications and logs out).
//!
//! Startup order matters: pin to the core, take the channel fds, die with the parent
//! (`PR_SET_PDEATHSIG`), and only then start the single-threaded runtime, so that no thread of
//! this process ever runs elsewhere.
//!
//! Exit codes: 0 closed by `worker.close` or the supervisor closed the channel; 42 bad settings
//! (argv); 1 any other failure (channel fds missing, IO error); 101 a panic (broken invariant).

mod channel;
mod logging;
mod net;
mod ports;
mod settings;
mod tcp;
mod udp;

use std::process::ExitCode;

/// Exit code for bad settings (argv), distinct from other failures so the supervisor does not
/// restart a worker that can never start.
pub(crate) const EXIT_BAD_SETTINGS: u8 = 42;
pub(crate) const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let settings = match settings::Settings::parse_from_env() {
        Ok(s) => s,
        Err(e) => return e,
    };

    // Pin first: everything this process does from here on runs on its core. A core outside the
    // machine or outside the allowed cpuset is a settings error (the supervisor gives up on it).
    if let Some(core) = settings.core {
        let pinned = (core as usize) < libc::CPU_SETSIZE as usize
            && core_affinity::set_for_current(core_affinity::CoreId { id: core as usize });
        if !pinned {
            eprintln!("ferrosfu-worker: cannot pin to core {core}: not available to this process");
            return ExitCode::from(EXIT_BAD_SETTINGS);
        }
    }

    let fds = match channel::take_fds() {
        Ok(fds) => fds,
        Err(e) => {
            eprintln!("ferrosfu-worker: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };

    // Never outlive the supervisor. If it is already gone (we were re-parented), leave now.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        eprintln!("ferrosfu-worker: prctl(PR_SET_PDEATHSIG) failed: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    // The supervisor passes its pid; a different parent now means it died before prctl took
    // effect. (Not `getppid() == 1`: the supervisor may itself be pid 1 in a container.)
    let expected_parent = std::env::var("FERROSFU_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    if expected_parent.is_some_and(|p| p != nix::unistd::getppid().as_raw()) {
        eprintln!("ferrosfu-worker: parent already exited");
        return ExitCode::from(EXIT_FAILURE);
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrosfu-worker: cannot start runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(channel::run(settings, fds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrosfu-worker: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
