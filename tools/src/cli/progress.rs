//! A progress line on stderr: redrawn in place with `\r`, at most ten times a second, and only
//! when stderr is a terminal. Elsewhere (a pipe, a file, CI logs) nothing is printed; the
//! command prints its summary when done.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress line for `total` items.
pub struct Progress {
    label: &'static str,
    unit: &'static str,
    total: usize,
    start: Instant,
    last: Option<Instant>,
    enabled: bool,
    drawn: bool,
}

impl Progress {
    /// A progress line, shown only if stderr is a terminal (and `TERM` is not `dumb`).
    pub fn new(label: &'static str, unit: &'static str, total: usize) -> Self {
        let enabled = std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        Progress { label, unit, total, start: Instant::now(), last: None, enabled, drawn: false }
    }

    /// `done` of the items are done.
    pub fn update(&mut self, done: usize) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) && done < self.total {
            return;
        }
        self.last = Some(now);
        let line = self.line(done, now.duration_since(self.start).as_secs_f64());
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be drawn is not worth failing the command for.
        let _ = write!(err, "\r{line}\x1b[K").and_then(|()| err.flush());
        self.drawn = true;
    }

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

    /// Clears the line (the summary is printed by the caller).
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K").and_then(|()| err.flush());
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error in the middle of a run: keep what was drawn, and end its line.
        if self.drawn {
            let _ = writeln!(std::io::stderr());
        }
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
        let p = Progress { label: "embedding", unit: "texts", total: 100, start: Instant::now(), last: None, enabled: false, drawn: false };
        assert_eq!(p.line(50, 10.0), "embedding [############------------] 50/100 texts (5/s, 10 s left)");
        assert_eq!(p.line(100, 10.0), "embedding [########################] 100/100 texts (10/s)");
    }
}
