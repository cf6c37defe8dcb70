//! The full-text index: the `records_fts` table (SQLite FTS5) over `records.text`, written by
//! [`Mirror::apply`] in the same transaction as the records, and the BM25-ranked look-up that
//! keyword search answers from.
//!
//! **Tokenizer**: `porter unicode61 remove_diacritics 2`. `unicode61` splits on everything that
//! is not a letter, a number or a private-use character, by Unicode category, and folds case
//! for all of Unicode (not only ASCII, as `ascii` does); `remove_diacritics 2` makes "café"
//! and "cafe" one token, also for letters written with combining marks; `porter` stems English
//! words, so "closing generators" finds "closes the generator". An identifier is cut at its
//! punctuation (`os.path.join` gives `os`, `path`, `join`), so a query naming it matches.
//! `trigram` was rejected: it serves substring tests, not ranking by words, and its index is
//! several times larger. The index keeps every word; stop words are dropped from *queries*
//! only ([`fts_query`]): they carry almost no BM25 weight but cost a walk of a posting list
//! that holds most of the store.
//!
//! **Queries**: a query is text, not FTS5 syntax: [`fts_query`] turns it into a disjunction of
//! quoted terms, so no input is a syntax error and every word may match.

use super::errors::{damaged, slot_from_sql, Context};
use super::Mirror;
use crate::error::Result;

/// The full-text table, its tokenizer, and its content: the `records` table, by slot. It
/// stores no copy of the text (FTS5's "external content").
pub(super) fn fts_schema() -> String {
    format!("CREATE VIRTUAL TABLE records_fts USING fts5(text, content = 'records', content_rowid = 'slot', tokenize = '{TOKENIZER}');")
}

/// The full-text index's tokenizer (also the one `$matches` and the index check use).
const TOKENIZER: &str = "porter unicode61 remove_diacritics 2";

const SQL_FTS_INSERT: &str = "INSERT INTO records_fts (rowid, text) VALUES (?1, ?2)";
const SQL_FTS_DELETE: &str = "INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', ?1, ?2)";
pub(super) const SQL_FTS_CLEAR: &str = "INSERT INTO records_fts (records_fts) VALUES ('delete-all')";
/// Merges the index's segments into one, dropping deleted entries.
pub(super) const SQL_FTS_OPTIMIZE: &str = "INSERT INTO records_fts (records_fts) VALUES ('optimize')";
/// Every match, best first: FTS5's `bm25()` is smaller for better matches (it is negated
/// relevance), so the score is its negation.
const SQL_FTS_MATCH: &str = "SELECT rowid, -bm25(records_fts) FROM records_fts WHERE records_fts MATCH ?1 ORDER BY rank";

/// English words dropped from keyword queries (not from the index), unless a query holds
/// nothing else. The same list as the Python package's `memento._keyword.STOP_WORDS`.
pub const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// The FTS5 query for a text query, or `None` when it has no word.
///
/// Its words are the maximal runs of characters that are not separators: ASCII characters other
/// than letters and digits, and white space (Unicode's White_Space). FTS5's tokenizer then cuts
/// each word further where it sees fit (`"l'été"` is one word here, two tokens there, matched as
/// a phrase). The rule uses no Unicode table that differs between Rust's and Python's versions,
/// so that the Python package's `memento._keyword.fts_query` makes the same query from any
/// text. Stop words are dropped unless nothing else is left; repeats are dropped; both compare
/// words with ASCII letters lower-cased. Each word is quoted (a quoted string is never an
/// operator, a column name or a prefix query) and the words are joined with `OR`, so a record
/// matching any of them is ranked, by BM25.
pub fn fts_query(text: &str) -> Option<String> {
    let terms = query_terms(text);
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

/// The FTS5 query of a `$matches` filter condition: the words of [`fts_query`] joined with
/// `AND` (a record must hold every one), or `None` when the text has no word.
pub fn fts_all_query(text: &str) -> Option<String> {
    let terms = query_terms(text);
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The quoted words of a query text ([`fts_query`]'s rule).
fn query_terms(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split(is_separator).filter(|w| !w.is_empty()).collect();
    let content: Vec<&str> = words.iter().copied().filter(|w| !STOP_WORDS.contains(&w.to_ascii_lowercase().as_str())).collect();
    let chosen = if content.is_empty() { words } else { content };
    let mut seen = std::collections::HashSet::new();
    chosen.into_iter().filter(|w| seen.insert(w.to_ascii_lowercase())).map(|w| format!("\"{w}\"")).collect()
}

/// Whether one text matches an FTS5 query, tokenized as the full-text index tokenizes: the
/// reference semantics of a `$matches` condition on one record ([`crate::Filter::matches`]),
/// which the index look-up reproduces. Runs in an in-memory SQLite database of this thread.
/// A failure of that database (it has no file; only memory exhaustion) is `false`.
pub(crate) fn text_matches(text: &str, query: &str) -> bool {
    thread_local! {
        static ONE: Option<rusqlite::Connection> = rusqlite::Connection::open_in_memory()
            .and_then(|c| c.execute_batch(&format!("CREATE VIRTUAL TABLE one USING fts5(text, tokenize = '{TOKENIZER}')")).map(|()| c))
            .ok();
    }
    ONE.with(|c| {
        let Some(c) = c else { return false };
        let run = || -> rusqlite::Result<bool> {
            c.execute("INSERT INTO one (rowid, text) VALUES (1, ?1)", [text])?;
            let found = c.prepare_cached("SELECT count(*) FROM one WHERE one MATCH ?1")?.query_row([query], |r| r.get::<_, i64>(0));
            c.execute("DELETE FROM one", [])?;
            Ok(found? > 0)
        };
        run().unwrap_or(false)
    })
}

/// Whether `c` separates the words of a keyword query ([`fts_query`]).
fn is_separator(c: char) -> bool {
    (c.is_ascii() && !c.is_ascii_alphanumeric()) || c.is_whitespace()
}

/// One keyword match: the record's slot and its BM25 score (larger is better).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeywordMatch {
    /// The record's slot.
    pub slot: u64,
    /// FTS5's BM25 score, negated so that larger is better (always positive for a match).
    pub score: f64,
}

impl Mirror {
    /// The slots whose text matches an FTS5 query ([`fts_all_query`]), ascending: a `$matches`
    /// condition's look-up.
    pub(crate) fn fts_slots(&self, query: &str) -> Result<Vec<u64>> {
        let mut st = self.conn.prepare_cached("SELECT rowid FROM records_fts WHERE records_fts MATCH ?1").ctx("preparing a text match")?;
        let mut rows = st.query([query]).ctx("matching texts")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx("reading a text match")? {
            out.push(slot_from_sql(r.get(0).ctx("reading a text match")?)?);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Adds a record's text to the full-text index. A record without text has an entry too,
    /// with no words: FTS5 counts the records it indexes, and checks that count against the
    /// records table.
    pub(super) fn fts_add(tx: &rusqlite::Transaction<'_>, slot: i64, text: Option<&str>) -> Result<()> {
        tx.prepare_cached(SQL_FTS_INSERT).and_then(|mut st| st.execute(rusqlite::params![slot, text])).ctx("adding a text to the full-text index")?;
        Ok(())
    }

    /// Removes a record's entry from the full-text index: FTS5 needs the text it was given.
    pub(super) fn fts_remove(tx: &rusqlite::Transaction<'_>, slot: i64, old_text: Option<&str>) -> Result<()> {
        tx.prepare_cached(SQL_FTS_DELETE).and_then(|mut st| st.execute(rusqlite::params![slot, old_text])).ctx("removing a text from the full-text index")?;
        Ok(())
    }

    /// The records whose text matches `query` (an FTS5 query from [`fts_query`]), best first,
    /// at most `limit` of them, and only slots `admit` accepts; records whose score ties the
    /// last one kept are kept too, so that the caller can break ties by id.
    pub fn keyword_matches(&self, query: &str, limit: usize, admit: &dyn Fn(u64) -> bool) -> Result<Vec<KeywordMatch>> {
        let mut out: Vec<KeywordMatch> = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut st = self.conn.prepare_cached(SQL_FTS_MATCH).ctx("preparing a keyword search")?;
        let mut rows = st.query([query]).ctx("running a keyword search")?;
        while let Some(r) = rows.next().ctx("reading a keyword match")? {
            let slot = slot_from_sql(r.get(0).ctx("reading a keyword match")?)?;
            let score: f64 = r.get(1).ctx("reading a keyword score")?;
            if out.len() >= limit && out.last().is_some_and(|m| m.score > score) {
                break;
            }
            if admit(slot) {
                out.push(KeywordMatch { slot, score });
            }
        }
        Ok(out)
    }

    /// The full-text index against the records' texts: the index is made again from the texts
    /// in SQLite's temporary database, and both must hold the same words at the same
    /// positions of the same records, and an entry for every record and no other. A read-only
    /// connection (the inspector's) can do this, which FTS5's own `integrity-check` command
    /// cannot (it is a write). Any difference is damage. (`PRAGMA integrity_check` checks the
    /// index's own structure.)
    pub(super) fn check_fts(&self) -> Result<()> {
        let setup = format!(
            "DROP TABLE IF EXISTS temp.fts_have; DROP TABLE IF EXISTS temp.fts_want; DROP TABLE IF EXISTS temp.fts_expected;
             CREATE VIRTUAL TABLE temp.fts_expected USING fts5(text, tokenize = '{TOKENIZER}');
             INSERT INTO temp.fts_expected (rowid, text) SELECT slot, text FROM main.records;
             CREATE VIRTUAL TABLE temp.fts_have USING fts5vocab(main, records_fts, instance);
             CREATE VIRTUAL TABLE temp.fts_want USING fts5vocab(temp, fts_expected, instance);"
        );
        let result = self.conn.execute_batch(&setup).ctx("rebuilding the full-text index to check it").and_then(|()| self.compare_fts());
        self.conn
            .execute_batch("DROP TABLE IF EXISTS temp.fts_have; DROP TABLE IF EXISTS temp.fts_want; DROP TABLE IF EXISTS temp.fts_expected;")
            .ctx("dropping the full-text index check's tables")?;
        result
    }

    /// The comparison of [`Mirror::check_fts`], over the tables it made.
    fn compare_fts(&self) -> Result<()> {
        let count = |sql: &str| -> Result<i64> { self.conn.query_row(sql, [], |r| r.get(0)).ctx("checking the full-text index") };
        let missing = count("SELECT count(*) FROM (SELECT term, doc, offset FROM temp.fts_want EXCEPT SELECT term, doc, offset FROM temp.fts_have)")?;
        let extra = count("SELECT count(*) FROM (SELECT term, doc, offset FROM temp.fts_have EXCEPT SELECT term, doc, offset FROM temp.fts_want)")?;
        if missing != 0 || extra != 0 {
            return Err(damaged(format_args!("the full-text index lacks {missing} words of the texts and holds {extra} words they do not have")));
        }
        let unindexed = count("SELECT count(*) FROM main.records WHERE slot NOT IN (SELECT id FROM main.records_fts_docsize)")?;
        let stray = count("SELECT count(*) FROM main.records_fts_docsize WHERE id NOT IN (SELECT slot FROM main.records)")?;
        if unindexed != 0 || stray != 0 {
            return Err(damaged(format_args!("the full-text index has no entry for {unindexed} records and {stray} entries for no record")));
        }
        Ok(())
    }
}
