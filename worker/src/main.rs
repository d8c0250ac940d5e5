//! `ferrosfu-worker`: one media worker, pinned to one core, driven by the supervisor over the
//! channel on fd 3 (requests in) and fd 4 (responses, notifications and logs out).
//!
//! Startup order matters: die with the parent (`PR_SET_PDEATHSIG`), pin to the core, and only then
//! start the single-threaded runtime, so that no thread of this process ever runs elsewhere.
//!
//! Exit codes: 0 closed by `worker.close` or the supervisor closed the channel; 42 bad settings
//! (argv); 1 any other failure (channel fds missing, IO error); 101 a panic (broken invariant).

mod channel;
mod logging;
mod settings;

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

    if let Some(core) = settings.core {
        let available = core_affinity::get_core_ids().unwrap_or_default();
        if !available.iter().any(|c| c.id == core as usize) {
            eprintln!("ferrosfu-worker: core {core} is not available to this process");
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
    if nix::unistd::getppid().as_raw() == 1 {
        eprintln!("ferrosfu-worker: parent already exited");
        return ExitCode::from(EXIT_FAILURE);
    }

    if let Some(core) = settings.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core as usize }) {
            eprintln!("ferrosfu-worker: could not pin to core {core}");
            return ExitCode::from(EXIT_FAILURE);
        }
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
