//! Texts to embed: read from a file (what `benches/embed/compare_embed.py` passes, so that
//! Python and Rust embed the very same strings), or generated here from a seed when no file is
//! given (deterministic English-like sentences; the same seed gives the same texts).

use std::path::Path;

use memento_benches::Rng;

use super::BoxResult;

/// Which kind of text the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One sentence of 8 to 20 words (at most 32 tokens with this vocabulary).
    Short,
    /// A paragraph of about 200 words (more than 200 tokens; the model truncates at 256).
    Long,
    /// A store record: one to three sentences.
    Store,
    /// A query: a short question.
    Query,
}

impl Kind {
    pub fn parse(s: &str) -> BoxResult<Kind> {
        Ok(match s {
            "short" => Kind::Short,
            "long" => Kind::Long,
            "store" => Kind::Store,
            "query" => Kind::Query,
            _ => return Err(format!("unknown text kind {s:?} (short, long, store, query)").into()),
        })
    }

    fn seed(self) -> u64 {
        match self {
            Kind::Short => 0x7368_6f72_7401,
            Kind::Long => 0x6c6f_6e67_0002,
            Kind::Store => 0x7374_6f72_6503,
            Kind::Query => 0x7175_6572_7904,
        }
    }
}

/// Texts from a file: one JSON string per line, or one JSON object with a `"text"` field.
pub fn read_file(path: &Path) -> BoxResult<Vec<String>> {
    let raw = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        let text = match &v {
            serde_json::Value::String(s) => s.clone(),
            _ => v.get("text").and_then(|t| t.as_str()).ok_or_else(|| format!("{}:{}: no \"text\"", path.display(), i + 1))?.to_owned(),
        };
        out.push(text);
    }
    Ok(out)
}

/// `n` texts: the first `n` of `file` if given (an error if it holds fewer), else generated.
pub fn load(file: Option<&str>, kind: Kind, n: usize) -> BoxResult<Vec<String>> {
    match file {
        Some(f) => {
            let mut t = read_file(Path::new(f))?;
            if t.len() < n {
                return Err(format!("{f} holds {} texts, {n} are needed", t.len()).into());
            }
            t.truncate(n);
            Ok(t)
        }
        None => Ok(generate(kind, n)),
    }
}

#[rustfmt::skip]
const SUBJECTS: &[&str] = &[
    "the parser", "a background worker", "the storage engine", "our release process", "the new scheduler", "every request handler",
    "the billing service", "a careful reviewer", "the build system", "the mobile client", "the search index", "a junior developer",
    "the cache layer", "the query planner", "the test suite", "the on-call engineer", "the garbage collector", "a nightly job",
    "the payment gateway", "the config loader", "the network stack", "the import script", "the dashboard", "the recommendation model",
];
#[rustfmt::skip]
const VERBS: &[&str] = &[
    "rejects", "retries", "compresses", "validates", "caches", "streams", "logs", "splits", "merges", "schedules", "encrypts",
    "deduplicates", "rewrites", "indexes", "serialises", "throttles", "measures", "archives", "forwards", "reorders",
];
#[rustfmt::skip]
const OBJECTS: &[&str] = &[
    "malformed input", "large uploads", "stale sessions", "every incoming event", "the user's preferences", "expired tokens",
    "duplicate records", "the monthly invoices", "slow database queries", "image thumbnails", "failed payments",
    "configuration changes", "unicode file names", "the audit trail", "partial writes", "customer support tickets",
    "weather forecasts", "recipe ingredients", "train timetables", "holiday photos", "chess openings", "garden plans",
];
#[rustfmt::skip]
const MODIFIERS: &[&str] = &[
    "before it reaches the disk", "when the queue is full", "after a network timeout", "during the nightly backup",
    "without blocking the caller", "in small batches", "on every restart", "once per hour", "if the checksum does not match",
    "while the user is offline", "for the European region", "behind a feature flag", "under heavy load", "at the end of the month",
    "so that nobody has to wait", "unless the operator objects", "in the order they arrived", "with a short delay",
];
#[rustfmt::skip]
const CONNECTIVES: &[&str] = &["Meanwhile,", "As a result,", "In practice,", "However,", "Later that week,", "To be safe,", "Surprisingly,", "Otherwise,"];
#[rustfmt::skip]
const QUESTIONS: &[&str] = &[
    "how does", "why does", "when does", "what happens when", "which component", "where exactly does", "how often does",
];

fn pick<'a>(rng: &mut Rng, list: &'a [&'a str]) -> &'a str {
    list[(rng.next_u64() % list.len() as u64) as usize]
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// One sentence of roughly 8 to 20 words.
fn sentence(rng: &mut Rng) -> String {
    let mut s = format!("{} {} {}", capitalise(pick(rng, SUBJECTS)), pick(rng, VERBS), pick(rng, OBJECTS));
    if !rng.next_u64().is_multiple_of(3) {
        s.push(' ');
        s.push_str(pick(rng, MODIFIERS));
    }
    if rng.next_u64().is_multiple_of(3) {
        s.push_str(" and ");
        s.push_str(pick(rng, VERBS));
        s.push(' ');
        s.push_str(pick(rng, OBJECTS));
    }
    s.push('.');
    s
}

/// Deterministic texts of a kind; text `i` is the same whatever `n` is.
pub fn generate(kind: Kind, n: usize) -> Vec<String> {
    let mut rng = Rng::new(kind.seed());
    (0..n)
        .map(|i| match kind {
            Kind::Short => sentence(&mut rng),
            Kind::Query => {
                format!("{} {} {} {}?", capitalise(pick(&mut rng, QUESTIONS)), pick(&mut rng, SUBJECTS), pick(&mut rng, VERBS), pick(&mut rng, OBJECTS))
            }
            Kind::Store => {
                let k = 1 + (rng.next_u64() % 3) as usize;
                let mut s = (0..k).map(|_| sentence(&mut rng)).collect::<Vec<_>>().join(" ");
                // Keeps records distinct (the store is keyed by content).
                s.push_str(&format!(" (note {i})"));
                s
            }
            Kind::Long => {
                let mut s = String::new();
                while s.split_whitespace().count() < 200 {
                    if !s.is_empty() {
                        s.push(' ');
                        if rng.next_u64().is_multiple_of(4) {
                            s.push_str(pick(&mut rng, CONNECTIVES));
                            s.push(' ');
                            let next = sentence(&mut rng);
                            let mut c = next.chars();
                            if let Some(f) = c.next() {
                                s.extend(f.to_lowercase().chain(c));
                            }
                            continue;
                        }
                    }
                    s.push_str(&sentence(&mut rng));
                }
                s
            }
        })
        .collect()
}
