//! The `--name value` command lines of the benchmark binaries.

/// `Result` with any error.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `--name value` pairs after a subcommand; the usage text goes into every error.
pub struct Args {
    pairs: Vec<(String, String)>,
    usage: &'static str,
}

impl Args {
    /// Parses the pairs; a lone name or a value without a name is an error.
    pub fn parse(raw: impl Iterator<Item = String>, usage: &'static str) -> BoxResult<Args> {
        let mut pairs = Vec::new();
        let mut raw = raw.peekable();
        while let Some(name) = raw.next() {
            let key = name.strip_prefix("--").ok_or_else(|| format!("expected an option, got {name:?}\n{usage}"))?;
            let value = raw.next().ok_or_else(|| format!("--{key} needs a value"))?;
            pairs.push((key.to_string(), value));
        }
        Ok(Args { pairs, usage })
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key`, which must be given.
    pub fn required(&self, key: &str) -> BoxResult<&str> {
        self.get(key).ok_or_else(|| format!("--{key} is required\n{}", self.usage).into())
    }

    /// A number (underscores allowed), or `default`.
    pub fn num(&self, key: &str, default: usize) -> BoxResult<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.replace('_', "").parse().map_err(|e| format!("--{key} {v:?}: {e}").into()),
        }
    }

    /// A comma-separated list, or `default`'s.
    pub fn list(&self, key: &str, default: &str) -> Vec<String> {
        self.get(key).unwrap_or(default).split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    }

    /// 0/1 (or false/true, no/yes), or `default`.
    pub fn flag(&self, key: &str, default: bool) -> BoxResult<bool> {
        match self.get(key) {
            None => Ok(default),
            Some("1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(v) => Err(format!("--{key} {v:?}: expected 0 or 1").into()),
        }
    }

    /// Refuses options not in `known`.
    pub fn check_known(&self, known: &[&str]) -> BoxResult<()> {
        match self.pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown option --{k}\n{}", self.usage).into()),
            None => Ok(()),
        }
    }
}
