//! Supervisor logging: text or JSON lines on stdout, filtered by `--log-level` directives that
//! `PUT /api/log-level` can change at run time. Text has ANSI colours only when stdout is a
//! terminal (journald and files get plain text).

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogFormat;

/// The installed filter: its reload handle and the directives it was built from.
struct Installed {
    handle: reload::Handle<EnvFilter, Registry>,
    directives: Mutex<String>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

fn parse(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("bad log filter {filter:?}: {e}"))
}

pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    let (filter_layer, handle) = reload::Layer::new(parse(filter)?);
    let ansi = std::io::stdout().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(fmt)
        .try_init()
        .map_err(|e| e.to_string())?;
    let _ = INSTALLED.set(Installed {
        handle,
        directives: Mutex::new(filter.to_owned()),
    });
    Ok(())
}

/// The supervisor's filter directives now (None: [`init`] did not run, e.g. in-process tests).
pub fn current_filter() -> Option<String> {
    let i = INSTALLED.get()?;
    Some(
        i.directives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    )
}

/// Replaces the supervisor's filter (worker lines arrive under target `worker` and pass it too).
pub fn set_filter(filter: &str) -> Result<(), String> {
    let parsed = parse(filter)?;
    let i = INSTALLED
        .get()
        .ok_or("logging is not initialised in this process")?;
    i.handle.reload(parsed).map_err(|e| e.to_string())?;
    *i.directives.lock().unwrap_or_else(|e| e.into_inner()) = filter.to_owned();
    Ok(())
}
