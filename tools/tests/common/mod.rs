//! What the CLI tests share: a temporary home for the default store, and runs of the real
//! `memento` binary.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;

/// A temporary home for one test: the default store is `home/default`, other stores beside it.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn default_store(&self) -> PathBuf {
        self.path("default")
    }
    /// `memento ARGS` with the default store in this home, run from the home.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = assert_cmd::cargo::cargo_bin_cmd!("memento");
        c.env("MEMENTO_HOME", self.default_store()).env_remove("COLUMNS").current_dir(self.dir.path()).args(args);
        c
    }
    /// `memento --store STORE ARGS`.
    pub fn on(&self, store: &str, args: &[&str]) -> Command {
        let mut c = self.cmd(&["--store", store]);
        c.args(args);
        c
    }
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        p
    }
    /// The names in the home's directory `name`, sorted; `None` if it does not exist.
    pub fn listing(&self, name: &str) -> Option<Vec<String>> {
        let rd = std::fs::read_dir(self.path(name)).ok()?;
        let mut names: Vec<String> = rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        Some(names)
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut c: Command) -> Run {
    let out = c.output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8(out.stdout).unwrap(), stderr: String::from_utf8(out.stderr).unwrap() }
}

/// Runs and expects status 0 with nothing on stderr; returns stdout.
pub fn ok(c: Command) -> String {
    let r = run(c);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "", "stderr of a successful run");
    r.stdout
}

/// Runs and expects status 1 with exactly one line on stderr starting with `error: `; returns
/// that line.
pub fn fails(c: Command) -> String {
    let r = run(c);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.starts_with("error: "), "stderr: {}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    r.stderr
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not one JSON document ({e}): {s}"))
}

/// The number of records in the store `name` of `h`.
pub fn records(h: &Home, name: &str) -> u64 {
    json(&ok(h.on(name, &["stats", "--json"])))["records"].as_u64().unwrap()
}

/// The ids of a `--json` result list, in its order.
pub fn hit_ids(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v.as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect()
}
