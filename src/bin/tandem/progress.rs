//! Progress and logs on standard error: indicatif bars when stderr is a terminal, the plain
//! text lines otherwise, or one JSON object per line with `--log-format json` (never bars).
//! Without bars, progress over texts comes as a line or event every few seconds
//! ([`PROGRESS_INTERVAL`], or `TANDEM_PROGRESS_INTERVAL_MS`).

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use tandem::cache::CacheStats;
use tandem::train::EpochRecord;

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, and progress bars on a terminal.
    #[default]
    Text,
    /// One JSON object per event on stderr, no bars.
    Json,
}

/// How often progress over texts is logged when there is no bar (the first line comes after
/// one interval, so short runs print none).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// [`PROGRESS_INTERVAL`], or `TANDEM_PROGRESS_INTERVAL_MS` milliseconds when that is set to a
/// number.
fn progress_interval() -> Duration {
    std::env::var("TANDEM_PROGRESS_INTERVAL_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(PROGRESS_INTERVAL, Duration::from_millis)
}

/// Logging options shared by train, eval, predict and embed.
#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// No progress bars and no per-epoch or embedding logs (the final summary and errors stay).
    #[arg(long, short)]
    pub quiet: bool,
    /// Log format on stderr: text (bars when stderr is a terminal) or json (JSON lines).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Writes one JSON event line to stderr (see [`event_line`]).
pub fn event(name: &str, fields: Value) {
    let mut err = std::io::stderr().lock();
    // A closed stderr is not worth failing the command for.
    let _ = writeln!(err, "{}", event_line(name, &fields));
}

/// One JSON object: `"event": name` first, then the fields of `fields` (an object).
fn event_line(name: &str, fields: &Value) -> String {
    let head = json!({ "event": name }).to_string();
    match fields {
        // Splice the two objects so the event name leads (serde_json sorts map keys).
        Value::Object(m) if !m.is_empty() => {
            format!("{},{}", &head[..head.len() - 1], &fields.to_string()[1..])
        }
        _ => head,
    }
}

/// The command's logger.
pub struct Log {
    format: LogFormat,
    quiet: bool,
    bars: bool,
    started: Instant,
    stage: Option<(String, ProgressBar)>,
    metric_name: &'static str,
    interval: Duration,
}

impl Log {
    /// A logger for `args`; bars only in text mode, not quiet, with stderr a terminal.
    pub fn new(args: &LogArgs) -> Log {
        let bars =
            args.log_format == LogFormat::Text && !args.quiet && std::io::stderr().is_terminal();
        Log {
            format: args.log_format,
            quiet: args.quiet,
            bars,
            started: Instant::now(),
            stage: None,
            metric_name: "metric",
            interval: progress_interval(),
        }
    }

    /// True in JSON mode.
    pub fn json(&self) -> bool {
        self.format == LogFormat::Json
    }

    /// Seconds since the command started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Progress over `total` texts, labelled `what`: a bar on a terminal, else (unless quiet) a
    /// line or JSON event every [`PROGRESS_INTERVAL`].
    pub fn texts(&self, what: &str, total: usize) -> Texts {
        let bar = self.bars.then(|| {
            let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {pos}/{len} texts  {per_sec}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(what.to_string());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        let now = Instant::now();
        Texts {
            lines: (bar.is_none() && !self.quiet).then_some((self.format, self.interval)),
            bar,
            what: what.to_string(),
            started: now,
            total,
            done: Cell::new(0),
            last: Cell::new(now),
        }
    }

    /// Reports a finished embedding pass over `n` texts: a JSON event, or the text line.
    pub fn embedded(&self, texts: Texts, n: usize, stats: CacheStats) {
        let secs = texts.finish();
        if self.quiet {
            return;
        }
        match self.format {
            LogFormat::Json => event(
                "embed",
                json!({
                    "set": texts.what,
                    "texts": n,
                    "cached": stats.hits,
                    "computed": stats.misses,
                    "repaired": stats.repaired,
                    "seconds": round_to(secs, 2),
                    "texts_per_second": round_to(if secs > 0.0 { n as f64 / secs } else { 0.0 }, 1),
                }),
            ),
            LogFormat::Text => {
                eprintln!(
                    "embeddings ({}): {} cached, {} computed in {secs:.1}s",
                    texts.what, stats.hits, stats.misses
                );
                if stats.repaired > 0 {
                    eprintln!(
                        "warning: {} embedding-cache records failed their checksum; those texts \
                         were embedded again and the cache repaired",
                        stats.repaired
                    );
                }
            }
        }
    }

    /// Names the per-epoch validation metric (macro-F1 or RMSE) in bars and text lines.
    pub fn set_metric_name(&mut self, name: &'static str) {
        self.metric_name = name;
    }

    /// One finished epoch: a bar per stage, a text line, or a JSON event.
    pub fn epoch(&mut self, r: &EpochRecord) {
        if self.quiet {
            return;
        }
        let metric = r
            .metric
            .map(|m| format!("  valid {} {m:.4}", self.metric_name))
            .unwrap_or_default();
        // Stages without validation (the contrastive warm-up) show no validation loss.
        let valid = if r.valid_loss.is_nan() {
            String::new()
        } else {
            format!("  valid loss {:.4}", r.valid_loss)
        };
        match self.format {
            LogFormat::Json => event(
                "epoch",
                json!({
                    "stage": r.stage,
                    "epoch": r.epoch + 1,
                    "epochs": r.epochs,
                    "train_loss": r.train_loss,
                    "valid_loss": r.valid_loss,
                    "metric": r.metric,
                    "metric_name": self.metric_name,
                    "lr": r.lr,
                    "elapsed": r.elapsed,
                }),
            ),
            LogFormat::Text if self.bars => {
                if self.stage.as_ref().is_none_or(|(s, _)| *s != r.stage) {
                    self.finish_stage();
                    let b = ProgressBar::with_draw_target(
                        Some(r.epochs as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>10} [{bar:30}] epoch {pos}/{len}  {per_sec}  ETA {eta}  {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b.set_prefix(r.stage.clone());
                    self.stage = Some((r.stage.clone(), b));
                }
                if let Some((_, b)) = &self.stage {
                    // Message first: setting the position redraws with it.
                    b.set_message(format!(
                        "train loss {:.4}{valid}{metric}  lr {:.2e}",
                        r.train_loss, r.lr
                    ));
                    b.set_position(r.epoch as u64 + 1);
                }
            }
            LogFormat::Text => eprintln!(
                "{:>8} epoch {:>3}/{:<3} train loss {:.4}{valid}{metric}  lr {:.2e}  {:.1}s",
                r.stage,
                r.epoch + 1,
                r.epochs,
                r.train_loss,
                r.lr,
                r.elapsed
            ),
        }
    }

    /// A line worth a user's attention that changes nothing (a JSON `note` event, or text).
    pub fn note(&self, message: &str) {
        if self.quiet {
            return;
        }
        match self.format {
            LogFormat::Json => event("note", json!({ "message": message })),
            LogFormat::Text => eprintln!("note: {message}"),
        }
    }

    /// One measured (or skipped) candidate of the default recipe's search.
    pub fn candidate(&self, c: &tandem::compare::select::Candidate, i: usize, n: usize) {
        if self.quiet {
            return;
        }
        match self.format {
            LogFormat::Json => event(
                "recipe",
                json!({
                    "recipe": c.arm.name(),
                    "index": i,
                    "of": n,
                    "metric": self.metric_name,
                    "score": c.score,
                    "skipped": c.skipped,
                    "seconds": round_to(c.seconds, 2),
                }),
            ),
            LogFormat::Text => match (&c.score, &c.skipped) {
                (Some(v), _) => eprintln!(
                    "recipe {i}/{n} {:<18} {} {v:.4}  ({:.1}s)",
                    c.arm.name(),
                    self.metric_name,
                    c.seconds
                ),
                (None, why) => eprintln!(
                    "recipe {i}/{n} {:<18} not measured: {}  ({:.1}s)",
                    c.arm.name(),
                    why.as_deref().unwrap_or("-"),
                    c.seconds
                ),
            },
        }
    }

    /// Leaves the current stage's bar on screen as its summary (early stopping ends it short).
    pub fn finish_stage(&mut self) {
        if let Some((_, b)) = self.stage.take() {
            b.abandon();
        }
    }

    /// The command's last event in JSON mode (`fields` plus `seconds`); nothing in text mode.
    pub fn done(&mut self, fields: Value) {
        self.finish_stage();
        if self.json() {
            let mut f = fields;
            if let Value::Object(m) = &mut f {
                m.insert("seconds".into(), json!(round_to(self.elapsed(), 2)));
            }
            event("done", f);
        }
    }
}

/// `v` rounded to `digits` decimals (for rates and times people read).
pub fn round_to(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

/// A rate people read: whole texts per second, one decimal below 10.
fn rate_text(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// Progress over texts (embedding or prediction).
pub struct Texts {
    bar: Option<ProgressBar>,
    what: String,
    started: Instant,
    /// Without a bar: the format and interval of the periodic progress lines.
    lines: Option<(LogFormat, Duration)>,
    total: usize,
    done: Cell<usize>,
    /// When the last progress line was written (or progress started).
    last: Cell<Instant>,
}

impl Texts {
    /// `n` more texts done: the bar advances, or a progress line is written when the interval
    /// has passed since the last one.
    pub fn inc(&self, n: usize) {
        let done = self.done.get() + n;
        self.done.set(done);
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        let Some((format, every)) = self.lines else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(self.last.get()) < every {
            return;
        }
        self.last.set(now);
        let secs = now.duration_since(self.started).as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let left = self.total.saturating_sub(done) as f64;
        let eta = if rate > 0.0 {
            (left / rate).round()
        } else {
            0.0
        };
        match format {
            LogFormat::Json => event(
                "progress",
                json!({
                    "set": self.what,
                    "done": done,
                    "total": self.total,
                    "texts_per_second": round_to(rate, 1),
                    "eta_seconds": eta as u64,
                }),
            ),
            LogFormat::Text => eprintln!(
                "progress ({}): {done}/{} texts, {} texts/s, ETA {eta:.0}s",
                self.what,
                self.total,
                rate_text(rate)
            ),
        }
    }

    /// Clears the bar; returns the seconds since it started.
    fn finish(&self) -> f64 {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.started.elapsed().as_secs_f64()
    }

    /// Ends progress without a log line (for commands whose output says it all).
    pub fn close(self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_lead_with_the_event_and_stay_valid_json() {
        let line = event_line(
            "epoch",
            &json!({"stage": "s\"1", "metric": null, "lr": 0.5}),
        );
        assert!(line.starts_with("{\"event\":\"epoch\","), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["stage"], "s\"1");
        assert_eq!(v["lr"], 0.5);
        assert_eq!(event_line("done", &json!({})), "{\"event\":\"done\"}");
        // NaN losses (embedding-only records) become null, not invalid JSON.
        let v: Value =
            serde_json::from_str(&event_line("epoch", &json!({"loss": f32::NAN}))).unwrap();
        assert!(v["loss"].is_null());
    }

    #[test]
    fn rates_are_rounded_for_reading() {
        assert_eq!(rate_text(310.4), "310");
        assert_eq!(rate_text(3.04), "3.0");
        assert_eq!(round_to(2.34567, 2), 2.35);
    }
}
