//! `ferrosfu`: the supervisor binary. Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT),
//! 2 for configuration errors, 1 for other startup failures.

use std::process::ExitCode;

use clap::Parser;
use ferrosfu::{Cli, Config, Supervisor};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let print_config = cli.print_config;
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrosfu: {e}");
            return ExitCode::from(2);
        }
    };
    if print_config {
        println!("{:#}", config.to_json());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = ferrosfu::logging::init(&config.log_level, config.log_format) {
        eprintln!("ferrosfu: {e}");
        return ExitCode::from(2);
    }
    // Pin before the runtime exists, so every thread it starts inherits the mask.
    let pinned = match config.supervisor_cores.as_ref().map(|c| c.resolve()) {
        None => None,
        Some(Ok(cores)) => match ferrosfu::affinity::pin_current_thread(&cores) {
            Ok(()) => {
                tracing::info!(?cores, "supervisor threads pinned");
                Some(cores)
            }
            Err(e) => {
                eprintln!("ferrosfu: supervisor.cores: {e}");
                return ExitCode::from(2);
            }
        },
        Some(Err(e)) => {
            eprintln!("ferrosfu: supervisor.cores: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match ferrosfu::affinity::runtime_builder(pinned).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrosfu: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    // Install the handlers before starting workers so an early SIGTERM still drains.
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("ferrosfu: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let sup = match Supervisor::start(config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("startup failed: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // SIGHUP: read the TLS certificate and key again (renewed certificates); open connections
    // keep theirs. Without TLS there is nothing to reload.
    let reloader = sup.tls_reloader();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match &reloader {
                Some(r) => match r.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => tracing::error!(
                        "SIGHUP: TLS certificate not reloaded, the old one stays: {e}"
                    ),
                },
                None => tracing::info!("SIGHUP: no TLS certificate configured, nothing to reload"),
            }
        }
    });
    // The first signal (or `POST /api/drain`) drains: open meetings go on until they end or
    // `drain_timeout_s` passes; a second signal stops at once.
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        () = sup.drain_started() => "POST /api/drain",
    };
    tracing::info!("{why} received: draining (send it again to stop now)");
    sup.drain(why).await;
    tokio::select! {
        () = sup.drained() => {}
        _ = term.recv() => tracing::info!("SIGTERM received again: stopping now"),
        _ = int.recv() => tracing::info!("SIGINT received again: stopping now"),
    }
    sup.shutdown().await;
    ExitCode::SUCCESS
}
