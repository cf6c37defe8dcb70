//! A progress line on stderr, drawn by indicatif: redrawn in place at most ten times a second,
//! fitted to the terminal's width, and only when stderr is a terminal (whose `TERM` is set and
//! not `dumb`). Elsewhere (a pipe, a file, CI logs) nothing is printed; the command prints its
//! summary when done. The line itself is ours: `embedding [####----] 50/100 texts (5/s, 10 s
//! left)`.

use std::fmt;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle};

/// A progress line for `total` items.
pub struct Progress {
    bar: ProgressBar,
}

/// What the line says of the work.
#[derive(Debug, Clone, Copy)]
struct Line {
    label: &'static str,
    unit: &'static str,
    total: usize,
}

impl Progress {
    /// A progress line, shown only if stderr is a terminal.
    pub fn new(label: &'static str, unit: &'static str, total: usize) -> Self {
        let line = Line { label, unit, total };
        let draw = move |state: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = w.write_str(&line.line(state.pos() as usize, state.elapsed().as_secs_f64()));
        };
        // The template is fixed, and valid: the fallback is never used.
        let style = ProgressStyle::with_template("{line}").map_or_else(|_| ProgressStyle::default_bar(), |s| s.with_key("line", draw));
        // An error in the middle of a run drops the bar: what was drawn stays.
        let bar =
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr_with_hz(10)).with_style(style).with_finish(ProgressFinish::Abandon);
        Progress { bar }
    }

    /// `done` of the items are done.
    pub fn update(&mut self, done: usize) {
        self.bar.set_position(done as u64);
    }

    /// Clears the line (the summary is printed by the caller).
    pub fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Line {
    fn line(&self, done: usize, secs: f64) -> String {
        const BAR: usize = 24;
        let total = self.total.max(1);
        let done = done.min(total);
        let filled = done * BAR / total;
        let bar: String = "#".repeat(filled) + &"-".repeat(BAR - filled);
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = if rate > 0.0 && done < total { format!(", {} left", duration((total - done) as f64 / rate)) } else { String::new() };
        format!("{} [{bar}] {done}/{} {} ({:.0}/s{eta})", self.label, self.total, self.unit, rate)
    }
}

/// `42 s`, `3 min 5 s`.
pub fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_count_rate_and_time_left() {
        let p = Line { label: "embedding", unit: "texts", total: 100 };
        assert_eq!(p.line(50, 10.0), "embedding [############------------] 50/100 texts (5/s, 10 s left)");
        assert_eq!(p.line(100, 10.0), "embedding [########################] 100/100 texts (10/s)");
    }
}
