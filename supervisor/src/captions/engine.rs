//! The transcriber child's command line and what its output means (pure; unit-tested).
//!
//! The child receives one Opus producer as RTP on a loopback port and decodes it to 16 kHz mono
//! S16LE, then hands it to the engine (`[captions]`): GStreamer elements in the same
//! `gst-launch-1.0 -m` (the default, pocketsphinx, posts `hypothesis=` / `final=` element
//! messages that `-m` prints), or a command fed through `fdsink` whose stdout is JSON lines.

use serde::Deserialize;

use crate::config::CaptionEngine;

/// One hypothesis of the engine.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hypothesis {
    pub text: String,
    pub is_final: bool,
    /// Seconds of audio since the child started, when the engine says (command engines).
    pub span: Option<(f64, f64)>,
}

/// The decoding part every engine shares: RTP (Opus, payload type `pt`) on `port` → 16 kHz mono
/// S16LE. A jitter buffer puts late packets back in order; lost ones are concealed by the decoder.
fn source(port: u16, pt: u8) -> String {
    format!(
        "udpsrc address=127.0.0.1 port={port} \
         caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={pt} \
         ! rtpjitterbuffer latency=100 ! rtpopusdepay ! opusdec plc=true ! audioconvert \
         ! audioresample ! audio/x-raw,format=S16LE,rate=16000,channels=1"
    )
}

/// The children for `engine`: the `gst-launch-1.0` arguments, and the shell command its audio
/// goes to (its stdout on the command's stdin) when the engine is a command.
pub(crate) fn command(engine: &CaptionEngine, port: u16, pt: u8) -> (Vec<String>, Option<String>) {
    match engine {
        CaptionEngine::Pipeline(p) => {
            let mut args = vec!["-m".to_owned()];
            args.extend(
                format!("{} ! {p}", source(port, pt))
                    .split_whitespace()
                    .map(str::to_owned),
            );
            (args, None)
        }
        CaptionEngine::Command(c) => {
            let mut args = vec!["-q".to_owned()];
            args.extend(
                format!("{} ! fdsink fd=1 sync=false", source(port, pt))
                    .split_whitespace()
                    .map(str::to_owned),
            );
            (args, Some(c.clone()))
        }
    }
}

/// A line of the child's stdout as a hypothesis, if it is one.
pub(crate) fn parse_line(engine: &CaptionEngine, line: &str) -> Option<Hypothesis> {
    match engine {
        CaptionEngine::Pipeline(_) => parse_message(line),
        CaptionEngine::Command(_) => parse_json(line),
    }
}

#[derive(Deserialize)]
struct JsonHypothesis {
    text: String,
    #[serde(rename = "final", default)]
    is_final: bool,
    start: Option<f64>,
    end: Option<f64>,
}

fn parse_json(line: &str) -> Option<Hypothesis> {
    let h: JsonHypothesis = serde_json::from_str(line.trim()).ok()?;
    let span = match (h.start, h.end) {
        (Some(s), Some(e)) if s.is_finite() && e.is_finite() && s >= 0.0 && e >= s => Some((s, e)),
        _ => None,
    };
    Some(Hypothesis {
        text: h.text,
        is_final: h.is_final,
        span,
    })
}

/// `gst-launch-1.0 -m`'s line for an element message with a `hypothesis` field, e.g.
/// `Got message #86 from element "pocketsphinx0" (element): pocketsphinx,
/// hypothesis=(string)"hello world", confidence=(double)-8420, final=(boolean)true;`
/// (a one-word string is not quoted).
fn parse_message(line: &str) -> Option<Hypothesis> {
    if !line.starts_with("Got message") {
        return None;
    }
    let (_, rest) = line.split_once("hypothesis=(string)")?;
    let text = if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
        out
    } else {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                ',' | ';' => break,
                '\\' => out.extend(chars.next()),
                c => out.push(c),
            }
        }
        out.trim().to_owned()
    };
    let is_final = line.contains("final=(boolean)true") || line.contains("final=(boolean)1");
    Some(Hypothesis {
        text,
        is_final,
        span: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gst() -> CaptionEngine {
        CaptionEngine::Pipeline("pocketsphinx ! fakesink".into())
    }

    #[test]
    fn pocketsphinx_messages() {
        let h = parse_line(&gst(), r#"Got message #86 from element "pocketsphinx0" (element): pocketsphinx, hypothesis=(string)"hello \"big\" world", confidence=(double)-8420, final=(boolean)true;"#).unwrap();
        assert_eq!(h.text, r#"hello "big" world"#);
        assert!(h.is_final);
        let h = parse_line(&gst(), r#"Got message #12 from element "pocketsphinx0" (element): pocketsphinx, hypothesis=(string)hello, final=(boolean)false;"#).unwrap();
        assert_eq!((h.text.as_str(), h.is_final), ("hello", false));
        // As gst-launch-1.0 1.22 prints them: spaces escaped inside quotes, the hypothesis last.
        let h = parse_line(&gst(), r#"Got message #40 from element "pocketsphinx0" (element): pocketsphinx, timestamp=(guint64)18446744073709551615, final=(boolean)true, confidence=(glong)4294911094, hypothesis=(string)"i\ was\ like\ to\ have\ a\ cup\ of\ coffee";"#).unwrap();
        assert_eq!(
            (h.text.as_str(), h.is_final),
            ("i was like to have a cup of coffee", true)
        );
        let h = parse_line(&gst(), r#"Got message #7 from element "pocketsphinx0" (element): pocketsphinx, timestamp=(guint64)2241974838, final=(boolean)false, confidence=(glong)0, hypothesis=(string)don\'t;"#).unwrap();
        assert_eq!((h.text.as_str(), h.is_final), ("don't", false));
        for other in [
            "Setting pipeline to PLAYING ...",
            r#"Got message #3 from element "udpsrc0" (state-changed): GstMessageStateChanged"#,
            r#"Got message #9 from element "pocketsphinx0" (element): pocketsphinx, hypothesis=(string)"unterminated"#,
        ] {
            assert_eq!(parse_line(&gst(), other), None, "{other}");
        }
    }

    #[test]
    fn json_lines() {
        let e = CaptionEngine::Command("stt".into());
        let h = parse_line(
            &e,
            r#"{"text":"hello world","final":true,"start":1.5,"end":2.25}"#,
        )
        .unwrap();
        assert_eq!(h.text, "hello world");
        assert!(h.is_final);
        assert_eq!(h.span, Some((1.5, 2.25)));
        let h = parse_line(&e, r#"{"text":"hel","start":2,"end":1}"#).unwrap();
        assert_eq!((h.is_final, h.span), (false, None));
        assert_eq!(parse_line(&e, "loading model"), None);
        assert_eq!(parse_line(&e, r#"{"final":true}"#), None);
    }

    #[test]
    fn command_lines() {
        let (args, cmd) = command(&gst(), 50000, 100);
        assert_eq!((args[0].as_str(), cmd), ("-m", None));
        assert!(args.contains(&"port=50000".to_owned()));
        assert!(args.iter().any(|a| a.ends_with("payload=100")));
        assert_eq!(args.last().unwrap(), "fakesink");
        let (args, cmd) = command(&CaptionEngine::Command("python3 stt.py".into()), 50002, 111);
        assert_eq!(args[0], "-q");
        assert_eq!(args[args.len() - 3..], ["fdsink", "fd=1", "sync=false"]);
        assert_eq!(cmd.as_deref(), Some("python3 stt.py"));
    }
}
