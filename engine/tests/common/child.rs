//! Child processes of the crash and stress tests: the test binary re-executed as a writer (or a
//! reader), killed on drop, with its tagged stdout lines read on a thread of their own.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout};
use std::sync::mpsc;

/// Kills the child on drop, so a failing assertion leaves no process behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Killed {
    /// Takes the child's piped stdout and sends on, as it comes, the rest of every line that
    /// holds `tag` (libtest may print `test name ... ` before the tag on the same line); the
    /// channel ends with the output.
    pub fn tagged_lines(&mut self, tag: &'static str) -> mpsc::Receiver<String> {
        let stdout: ChildStdout = self.0.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find(tag) {
                    if tx.send(line[i + tag.len()..].trim().to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        rx
    }
}
