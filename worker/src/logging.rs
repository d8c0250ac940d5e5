//! Worker logging: `tracing` events are filtered by a reloadable filter and sent over the channel
//! as `Log` messages; the supervisor re-emits them with the worker's core in the span.

use std::fmt::Write as _;

use ferrosfu_fbs::{LogLevel, LogRecord};
use tokio::sync::mpsc::UnboundedSender;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Changes the log filter at run time (`worker.update_settings`).
#[derive(Debug)]
pub(crate) struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    level: LogLevel,
    targets: Vec<String>,
}

/// Builds the filter: `targets` at `level` and the rest at `warn`, or everything at `level`.
pub(crate) fn filter(level: LogLevel, targets: &[String]) -> Result<EnvFilter, String> {
    let directive = if targets.is_empty() {
        level.as_str().to_owned()
    } else {
        let mut d = String::from("warn");
        for t in targets {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                return Err(format!("bad log target {t:?}"));
            }
            let _ = write!(d, ",{t}={level}");
        }
        d
    };
    EnvFilter::builder()
        .parse(&directive)
        .map_err(|e| format!("bad log filter {directive:?}: {e}"))
}

pub(crate) fn init(
    level: LogLevel,
    targets: &[String],
    sink: UnboundedSender<LogRecord>,
) -> Result<LogControl, String> {
    let (layer, handle) = reload::Layer::new(filter(level, targets)?);
    tracing_subscriber::registry()
        .with(layer)
        .with(ChannelLayer { sink })
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(LogControl {
        handle,
        level,
        targets: targets.to_vec(),
    })
}

impl LogControl {
    pub(crate) fn update(
        &mut self,
        level: Option<LogLevel>,
        targets: Option<Vec<String>>,
    ) -> Result<(), String> {
        let level = level.unwrap_or(self.level);
        let targets = targets.unwrap_or_else(|| self.targets.clone());
        let f = filter(level, &targets)?;
        self.handle.reload(f).map_err(|e| e.to_string())?;
        self.level = level;
        self.targets = targets;
        Ok(())
    }
}

struct ChannelLayer {
    sink: UnboundedSender<LogRecord>,
}

impl<S: tracing::Subscriber> Layer<S> for ChannelLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::TRACE => LogLevel::Trace,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::ERROR => LogLevel::Error,
        };
        let mut v = TextVisitor(String::new());
        event.record(&mut v);
        let record = LogRecord {
            level,
            target: meta.target().to_owned(),
            text: v.0,
        };
        if let Err(e) = self.sink.send(record) {
            // Channel writer gone (shutting down): stderr still reaches the supervisor.
            eprintln!("[{}] {}: {}", e.0.level, e.0.target, e.0.text);
        }
    }
}

struct TextVisitor(String);

impl Visit for TextVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}
