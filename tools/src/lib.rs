//! What the `memento` and `memento-inspect` binaries share: where the default store lives, how a
//! run ends (exit status, the one-line error, a quiet broken pipe). Both binaries reach the store
//! only through the `memento` crate's API; nothing here knows the file format.

pub mod cli;

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

pub mod inspect;

/// Exit status of a run that did what it was asked.
pub const EXIT_OK: u8 = 0;
/// Exit status of a run that failed (the error is one line on stderr), or of `verify` finding a
/// problem.
pub const EXIT_ERROR: u8 = 1;
/// Exit status of a usage error (clap's own convention, kept for errors found after parsing).
pub const EXIT_USAGE: u8 = 2;

/// The embedded default store: `$MEMENTO_HOME`, else `$XDG_DATA_HOME/memento/default`, else
/// `~/.local/share/memento/default`. Created on first use with the default model.
pub fn default_store_dir() -> PathBuf {
    if let Some(home) = non_empty_var("MEMENTO_HOME") {
        return PathBuf::from(home);
    }
    let data = non_empty_var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty_var("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("memento").join("default")
}

fn non_empty_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// True if the error (or any error in its chain) is a write to a closed pipe, as when the output
/// goes to `head`: the run then ends quietly with status 0.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            // serde_json wraps the io error of a writer and does not expose it as a source.
            || e.downcast_ref::<serde_json::Error>().is_some_and(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
    })
}

/// Ends a run: `Ok` is status 0; a broken pipe is status 0 and no message; any other error is one
/// line `error: ...` on stderr (with `verbose`, each cause of the chain on its own line after it)
/// and status 1, or 2 if it is a [`UsageError`].
pub fn finish(result: anyhow::Result<()>, verbose: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("{}", error_message(&e, verbose));
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}

/// What is printed of an error: `error: ` and the error, then each cause of its chain (joined
/// with ": " on one line, or one per line as `  caused by: ...` when `verbose`). A cause whose
/// text the line before already holds is left out: an engine error such as
/// `Error::Io` says its cause in its own message and also returns it as its source, and
/// printing both gave "File exists (os error 17).: File exists (os error 17)".
pub fn error_message(e: &anyhow::Error, verbose: bool) -> String {
    let mut out = format!("error: {e}");
    let mut last = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if last.contains(&text) {
            continue;
        }
        if verbose {
            out.push_str(&format!("\n  caused by: {text}"));
        } else {
            out.push_str(&format!(": {text}"));
        }
        last = text;
    }
    out
}

/// A usage error found after the arguments were parsed (a bad `--where` JSON, an option that
/// does not fit the store): exit status 2, like clap's own.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_found_in_the_chain() {
        let e = anyhow::Error::new(io::Error::new(io::ErrorKind::BrokenPipe, "closed")).context("writing the table");
        assert!(is_broken_pipe(&e));
        let other = anyhow::Error::new(io::Error::other("disk")).context("writing");
        assert!(!is_broken_pipe(&other));
        let json = serde_json::to_writer(ClosedPipe, &serde_json::json!({"k": [1, 2, 3]})).expect_err("the pipe is closed");
        assert!(is_broken_pipe(&anyhow::Error::new(json).context("printing JSON")));
    }

    #[test]
    fn a_cause_is_printed_once_when_the_message_holds_it() {
        let io = || io::Error::from(io::ErrorKind::AlreadyExists);
        let engine = memento::Error::Io { context: "creating the store directory d".into(), source: io() };
        let cause = io().to_string();
        let e = anyhow::Error::new(engine);
        assert_eq!(error_message(&e, false).matches(&cause).count(), 1, "{}", error_message(&e, false));
        assert_eq!(error_message(&e, true).matches(&cause).count(), 1, "{}", error_message(&e, true));
        assert!(!error_message(&e, true).contains("caused by"));
        // Wrapped in a context, the engine's message is printed once, and so is its cause.
        let wrapped = anyhow::Error::new(memento::Error::Io { context: "reading".into(), source: io() }).context("storing records 1 to 2");
        let line = error_message(&wrapped, false);
        assert!(line.starts_with("error: storing records 1 to 2: I/O error while reading: "), "{line}");
        assert_eq!(line.matches(&cause).count(), 1, "{line}");
        let lines = error_message(&wrapped, true);
        assert_eq!(lines.lines().count(), 2, "{lines}");
        assert!(lines.lines().nth(1).unwrap_or_default().starts_with("  caused by: I/O error while reading"), "{lines}");
        // A cause the message does not hold is printed, on one line or its own.
        let other = anyhow::Error::new(io::Error::other("disk full")).context("cannot write out.jsonl");
        assert_eq!(error_message(&other, false), "error: cannot write out.jsonl: disk full");
        assert_eq!(error_message(&other, true), "error: cannot write out.jsonl\n  caused by: disk full");
    }

    /// A writer whose reader has gone.
    struct ClosedPipe;

    impl io::Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
