//! The full-text index's tests: the query text, the index following every kind of write, its
//! integrity check, and a property test against a word scan of the texts.

#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;

const UUID: [u8; 16] = *b"0123456789abcdef";

fn fresh() -> Mirror {
    let mut m = Mirror::open_memory().unwrap();
    m.reset(UUID).unwrap();
    m
}

fn put<'a>(slot: u64, id: &'a str, text: Option<&'a str>) -> MirrorOp<'a> {
    MirrorOp::Put { slot, id, text, metadata: None }
}

fn slots(m: &Mirror, text: &str) -> Vec<u64> {
    let Some(q) = fts_query(text) else { return Vec::new() };
    let mut s: Vec<u64> = m.keyword_matches(&q, usize::MAX, &|_| true).unwrap().iter().map(|k| k.slot).collect();
    s.sort_unstable();
    s
}

#[test]
fn a_text_becomes_quoted_words_without_stop_words() {
    assert_eq!(fts_query("What happens when a generator is closed?").as_deref(), Some(r#""happens" OR "generator" OR "closed""#));
    // Only stop words: they are kept, once each (ignoring case).
    assert_eq!(fts_query("The the THE of").as_deref(), Some(r#""The" OR "of""#));
    // FTS5 syntax is just punctuation between words (and AND a stop word).
    assert_eq!(fts_query(r#"NEAR(a b) "x* AND -y: z^"#).as_deref(), Some(r#""NEAR" OR "b" OR "x" OR "y" OR "z""#));
    assert_eq!(fts_query("os.path.join()").as_deref(), Some(r#""os" OR "path" OR "join""#));
    assert_eq!(fts_query("  ?!  "), None);
    assert_eq!(fts_query(""), None);
    assert_eq!(fts_query("café naïve 東京").as_deref(), Some(r#""café" OR "naïve" OR "東京""#));
    // Only ASCII punctuation and white space separate; other characters stay in their word.
    assert_eq!(fts_query("l’été\u{3000}a\u{301}b—c").as_deref(), Some(r#""l’été" OR "áb—c""#.replace('á', "a\u{301}").as_str()));
    // Case is ignored for ASCII letters only, in stop words and repeats ("ÜBER" repeats "Über").
    assert_eq!(fts_query("Über über ÜBER THE").as_deref(), Some(r#""Über" OR "über""#));
}

#[test]
fn the_index_follows_puts_updates_deletes_and_resets() {
    let mut m = fresh();
    m.apply(1, &[put(0, "a", Some("generator.close() closes the generator")), put(1, "b", Some("send a value to a coroutine")), put(2, "c", None)]).unwrap();
    // Stemming: "closing generators" finds "closes the generator".
    assert_eq!(slots(&m, "closing generators"), [0]);
    assert_eq!(slots(&m, "CORoutines"), [1]);
    m.integrity_check().unwrap();
    // A text update replaces the words; a metadata update leaves them.
    m.apply(2, &[MirrorOp::Update { slot: 0, text: Some(Some("throw an exception into it")), metadata: Some(Some("{}")) }]).unwrap();
    assert_eq!(slots(&m, "generator"), Vec::<u64>::new());
    assert_eq!(slots(&m, "exceptions"), [0]);
    m.apply(3, &[MirrorOp::Update { slot: 0, text: None, metadata: Some(None) }]).unwrap();
    assert_eq!(slots(&m, "exceptions"), [0]);
    // Text set on a record that had none, and cleared on one that had some.
    m.apply(
        4,
        &[MirrorOp::Update { slot: 2, text: Some(Some("a coroutine too")), metadata: None }, MirrorOp::Update { slot: 1, text: Some(None), metadata: None }],
    )
    .unwrap();
    assert_eq!(slots(&m, "coroutine"), [2]);
    m.integrity_check().unwrap();
    m.apply(5, &[MirrorOp::Delete { slot: 2 }, MirrorOp::Delete { slot: 1 }]).unwrap();
    assert_eq!(slots(&m, "coroutine"), Vec::<u64>::new());
    m.integrity_check().unwrap();
    m.reset(UUID).unwrap();
    assert_eq!(slots(&m, "exception"), Vec::<u64>::new());
    m.integrity_check().unwrap();
}

#[test]
fn matches_are_ranked_by_bm25_and_filtered_and_cut_after_ties() {
    let mut m = fresh();
    m.apply(
        1,
        &[
            put(0, "a", Some("zebra")),
            put(1, "b", Some("zebra zebra and some other words to make it longer")),
            put(2, "c", Some("zebra zebra zebra")),
            put(3, "d", Some("zebra")),
            put(4, "e", Some("nothing here")),
        ],
    )
    .unwrap();
    let q = fts_query("zebra").unwrap();
    let all = m.keyword_matches(&q, 10, &|_| true).unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score) && all.iter().all(|k| k.score > 0.0));
    assert_eq!(all[0].slot, 2, "the most occurrences in the shortest text ranks first");
    // Only admitted slots; the limit counts admitted matches.
    let odd = m.keyword_matches(&q, 1, &|s| s % 2 == 1).unwrap();
    assert_eq!(odd.iter().map(|k| k.slot).collect::<Vec<_>>(), [3], "slot 3 ('zebra') outranks slot 1 (a longer text)");
    // Slots 0 and 3 tie: a limit that cuts between them keeps both.
    let two = m.keyword_matches(&q, 2, &|_| true).unwrap();
    assert_eq!(two.len(), 3);
    assert_eq!(two[1].score, two[2].score);
    assert!(m.keyword_matches(&q, 0, &|_| true).unwrap().is_empty());
}

#[test]
fn matches_conditions_take_words_as_keyword_search_does() {
    let mut m = fresh();
    m.apply(1, &[put(0, "a", Some("generator.close() closes the generator")), put(1, "b", Some("Café au lait")), put(2, "c", None)]).unwrap();
    let f = |j: &str| crate::Filter::from_json_str(j).unwrap();
    // Stemmed, case and diacritics folded, stop words ignored, every word needed.
    assert_eq!(m.filter_slots(&f(r#"{"$matches": "the closing GENERATORS"}"#)).unwrap(), [0]);
    assert_eq!(m.filter_slots(&f(r#"{"$matches": "cafe"}"#)).unwrap(), [1]);
    assert!(m.filter_slots(&f(r#"{"$matches": "generator lait"}"#)).unwrap().is_empty());
    assert_eq!(m.filter_slots(&f(r#"{"$not_matches": "generator"}"#)).unwrap(), [1, 2]);
    assert_eq!(m.filter_slots(&f(r#"{"$or": [{"$matches": "lait"}, {"$contains": "close()"}]}"#)).unwrap(), [0, 1]);
    // The reference evaluator on one record says the same.
    assert!(f(r#"{"$matches": "closed generator"}"#).matches(Some("generator.close()"), None));
    assert!(!f(r#"{"$matches": "closed"}"#).matches(None, None));
    assert!(f(r#"{"$not_matches": "closed"}"#).matches(None, None));
    // FTS5 syntax is words; no word at all is refused.
    assert_eq!(m.filter_slots(&f(r#"{"$matches": "(\"close* AND -"}"#)).unwrap(), [0]);
    for bad in [r#"{"$matches": "?!"}"#, r#"{"$matches": ""}"#, r#"{"$matches": 3}"#, r#"{"$not_matches": null}"#] {
        assert!(matches!(crate::Filter::from_json_str(bad), Err(Error::InvalidFilter { .. })), "{bad}");
    }
}

#[test]
fn the_integrity_check_notices_an_index_that_disagrees() {
    let mut m = fresh();
    m.apply(1, &[put(0, "a", Some("alpha beta")), put(1, "b", Some("gamma"))]).unwrap();
    m.integrity_check().unwrap();
    // An entry removed behind the mirror's back: the index lacks a text's tokens.
    m.conn.execute("INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', 1, 'gamma')", []).unwrap();
    let e = m.integrity_check().unwrap_err();
    assert!(is_damage(&e), "{e}");
    // An entry for a record that has no such text.
    let mut m = fresh();
    m.apply(1, &[put(0, "a", Some("alpha"))]).unwrap();
    m.conn.execute("INSERT INTO records_fts (rowid, text) VALUES (0, 'delta')", []).unwrap();
    assert!(is_damage(&m.integrity_check().unwrap_err()));
    // A record with no entry at all.
    let mut m = fresh();
    m.apply(1, &[put(0, "a", None)]).unwrap();
    m.conn.execute("INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', 0, NULL)", []).unwrap();
    assert!(is_damage(&m.integrity_check().unwrap_err()));
}

#[test]
fn a_read_only_connection_checks_and_searches_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sqlite");
    {
        let mut m = Mirror::open_file(&path).unwrap();
        m.reset(UUID).unwrap();
        m.apply(1, &[put(0, "a", Some("read only words"))]).unwrap();
        m.checkpoint().unwrap();
    }
    let ro = Mirror::open_read_only(&path, true).unwrap();
    ro.integrity_check().unwrap();
    assert_eq!(slots(&ro, "word"), [0]);
}

#[test]
fn a_version_3_mirror_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sqlite");
    {
        let mut m = Mirror::open_file(&path).unwrap();
        m.reset(UUID).unwrap();
        m.conn.execute_batch("DROP TABLE records_fts; PRAGMA user_version = 3;").unwrap();
    }
    let e = Mirror::open_file(&path).unwrap_err();
    assert!(is_damage(&e), "{e}");
}

/// Words that Porter stemming leaves alone and that are no stop words.
const WORDS: [&str; 6] = ["cat", "dog", "red", "sun", "map", "jazz"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn matches_are_exactly_the_texts_holding_the_word(
        texts in prop::collection::vec(prop::option::of(prop::collection::vec(0..WORDS.len(), 0..5)), 1..12),
        changes in prop::collection::vec((0..12usize, prop::option::of(prop::option::of(prop::collection::vec(0..WORDS.len(), 0..5)))), 0..12),
    ) {
        let join = |ws: &Vec<usize>| ws.iter().map(|&w| WORDS[w]).collect::<Vec<_>>().join(" ");
        let mut m = fresh();
        let mut model: std::collections::BTreeMap<u64, Option<String>> = std::collections::BTreeMap::new();
        let owned: Vec<(String, Option<String>)> = texts.iter().enumerate().map(|(i, t)| (format!("id{i}"), t.as_ref().map(join))).collect();
        let ops: Vec<MirrorOp<'_>> = owned.iter().enumerate().map(|(i, (id, t))| put(i as u64, id, t.as_deref())).collect();
        m.apply(1, &ops).unwrap();
        for (i, (_, t)) in owned.iter().enumerate() {
            model.insert(i as u64, t.clone());
        }
        let mut lsn = 2;
        for (slot, change) in changes {
            let slot = (slot % texts.len()) as u64;
            if !model.contains_key(&slot) {
                continue;
            }
            match change {
                None => {
                    m.apply(lsn, &[MirrorOp::Delete { slot }]).unwrap();
                    model.remove(&slot);
                }
                Some(t) => {
                    let t = t.as_ref().map(join);
                    m.apply(lsn, &[MirrorOp::Update { slot, text: Some(t.as_deref()), metadata: None }]).unwrap();
                    model.insert(slot, t);
                }
            }
            lsn += 1;
        }
        m.integrity_check().unwrap();
        for w in WORDS {
            let want: Vec<u64> = model.iter().filter(|(_, t)| t.as_deref().is_some_and(|t| t.split(' ').any(|x| x == w))).map(|(s, _)| *s).collect();
            prop_assert_eq!(slots(&m, w), want.clone(), "word {}", w);
            // $matches over the index, and on each record by the reference evaluator, agree
            // with the word scan; $not_matches is the rest.
            let f = crate::Filter::from_json_str(&format!(r#"{{"$matches": "{w}"}}"#)).unwrap();
            prop_assert_eq!(m.filter_slots(&f).unwrap(), want.clone(), "$matches {}", w);
            for (slot, t) in &model {
                prop_assert_eq!(f.matches(t.as_deref(), None), want.contains(slot));
            }
            let not = crate::Filter::from_json_str(&format!(r#"{{"$not_matches": "{w}"}}"#)).unwrap();
            let rest: Vec<u64> = model.keys().copied().filter(|s| !want.contains(s)).collect();
            prop_assert_eq!(m.filter_slots(&not).unwrap(), rest, "$not_matches {}", w);
        }
        // Two words: both must be there.
        let both = crate::Filter::from_json_str(r#"{"$matches": "cat, and the dog"}"#).unwrap();
        let want: Vec<u64> = model.iter().filter(|(_, t)| t.as_deref().is_some_and(|t| t.split(' ').any(|x| x == "cat") && t.split(' ').any(|x| x == "dog"))).map(|(s, _)| *s).collect();
        prop_assert_eq!(m.filter_slots(&both).unwrap(), want);
    }
}
