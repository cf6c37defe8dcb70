//! The filter's unit tests.

#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

fn parse(v: Value) -> Filter {
    Filter::parse(&v).unwrap_or_else(|e| panic!("{v} should parse: {e}"))
}

fn parse_err(v: Value) -> String {
    match Filter::parse(&v) {
        Ok(f) => panic!("{v} should not parse, got {f:?}"),
        Err(Error::InvalidFilter { reason }) => reason,
        Err(e) => panic!("{v}: wrong error kind {e:?}"),
    }
}

fn md(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn m(f: &Filter, meta: Value) -> bool {
    f.matches(None, Some(&md(meta)))
}

#[test]
fn shorthand_is_eq() {
    assert_eq!(parse(json!({"a": 1})), parse(json!({"a": {"$eq": 1}})));
    assert_eq!(parse(json!({"a": "x"})), parse(json!({"a": {"$eq": "x"}})));
    assert_eq!(parse(json!({"a": true})), parse(json!({"a": {"$eq": true}})));
}

#[test]
fn every_operator_parses_and_evaluates() {
    let rec = json!({"n": 5, "f": 2.5, "s": "m", "b": true});
    let cases: Vec<(Value, bool)> = vec![
        (json!({"n": {"$eq": 5}}), true),
        (json!({"n": {"$eq": 5.0}}), true),
        (json!({"f": {"$eq": 2.5}}), true),
        (json!({"n": {"$ne": 5}}), false),
        (json!({"n": {"$ne": 6}}), true),
        (json!({"n": {"$gt": 4}}), true),
        (json!({"n": {"$gt": 5}}), false),
        (json!({"n": {"$gte": 5}}), true),
        (json!({"n": {"$lt": 5.5}}), true),
        (json!({"n": {"$lte": 4.99}}), false),
        (json!({"s": {"$gt": "a"}}), true),
        (json!({"s": {"$lt": "a"}}), false),
        (json!({"s": {"$lte": "m"}}), true),
        (json!({"s": {"$gte": "n"}}), false),
        (json!({"n": {"$in": [1, 5]}}), true),
        (json!({"n": {"$in": ["5", true]}}), false),
        (json!({"n": {"$nin": [1, 2]}}), true),
        (json!({"n": {"$nin": [5]}}), false),
        (json!({"b": true}), true),
        (json!({"b": {"$ne": true}}), false),
        (json!({"b": {"$in": [false, true]}}), true),
        (json!({"b": 1}), false),
        (json!({"n": true}), false),
        (json!({"$and": [{"n": 5}, {"s": "m"}]}), true),
        (json!({"$and": [{"n": 5}, {"s": "x"}]}), false),
        (json!({"$or": [{"n": 6}, {"s": "m"}]}), true),
        (json!({"$or": [{"n": 6}, {"s": "x"}]}), false),
        (json!({"n": 5, "s": "m"}), true),
        (json!({"n": 5, "s": "x"}), false),
        (json!({"n": {"$gte": 5, "$lt": 6}}), true),
        (json!({"n": {"$gte": 5, "$lt": 5}}), false),
        (json!({}), true),
    ];
    for (filter, expected) in cases {
        let f = parse(filter.clone());
        assert_eq!(m(&f, rec.clone()), expected, "{filter}");
    }
}

#[test]
fn absent_and_mismatched_types() {
    let f = parse(json!({"k": {"$ne": "red"}}));
    assert!(m(&f, json!({})));
    assert!(m(&f, json!({"k": 7})));
    assert!(m(&f, json!({"k": null})));
    assert!(!m(&f, json!({"k": "red"})));
    assert!(f.matches(None, None));
    let f = parse(json!({"k": {"$nin": ["red"]}}));
    assert!(f.matches(None, None));
    assert!(m(&f, json!({"k": ["red"]})));
    for op in ["$eq", "$gt", "$gte", "$lt", "$lte"] {
        let f = parse(json!({"k": {op: 1}}));
        assert!(!f.matches(None, None), "{op}");
        assert!(!m(&f, json!({"k": "1"})), "{op}");
        assert!(!m(&f, json!({"k": true})), "{op}");
        assert!(!m(&f, json!({"k": [1]})), "{op}");
        assert!(!m(&f, json!({"k": {"x": 1}})), "{op}");
        assert!(!m(&f, json!({"other": 1})), "{op}");
    }
    // Lookup is at the top level only.
    let f = parse(json!({"a.b": 1}));
    assert!(!m(&f, json!({"a": {"b": 1}})));
    assert!(m(&f, json!({"a.b": 1})));
}

#[test]
fn numbers_compare_exactly() {
    assert!(m(&parse(json!({"n": 1})), json!({"n": 1.0})));
    let big = 9_007_199_254_740_993_i64; // 2^53 + 1, not an f64
    assert!(!m(&parse(json!({"n": 9_007_199_254_740_992.0})), json!({"n": big})));
    assert!(m(&parse(json!({"n": {"$gt": 9_007_199_254_740_992.0}})), json!({"n": big})));
    assert!(m(&parse(json!({"n": {"$lt": 1e19}})), json!({"n": i64::MAX})));
    assert!(m(&parse(json!({"n": {"$gt": -1e19}})), json!({"n": i64::MIN})));
    // An integer operand beyond i64 is refused (crate::limits); a stored one (written before
    // that rule) compares as the nearest f64.
    assert!(parse_err(json!({"n": u64::MAX})).contains("64-bit"));
    assert!(m(&parse(json!({"n": 1.8446744073709552e19})), json!({"n": u64::MAX})));
    assert!(m(&parse(json!({"n": -0.0})), json!({"n": 0})));
}

#[test]
fn strings_compare_by_bytes() {
    assert!(m(&parse(json!({"s": {"$lt": "a"}})), json!({"s": "B"})));
    assert!(m(&parse(json!({"s": {"$gt": "z"}})), json!({"s": "é"})));
    assert!(m(&parse(json!({"s": {"$lt": "ab"}})), json!({"s": "a"})));
    assert!(!m(&parse(json!({"s": "A"})), json!({"s": "a"})));
}

#[test]
fn contains() {
    let f = parse(json!({"$contains": "lo W"}));
    assert!(f.matches(Some("Hello World"), None));
    assert!(!f.matches(Some("hello world"), None));
    assert!(!f.matches(None, None));
    let f = parse(json!({"$not_contains": "lo W"}));
    assert!(!f.matches(Some("Hello World"), None));
    assert!(f.matches(Some("hello world"), None));
    assert!(f.matches(None, None));
}

#[test]
fn empty_object_matches_everything() {
    let f = parse(json!({}));
    assert!(f.is_match_all());
    assert!(f.matches(None, None));
    assert_eq!(Filter::all(), f);
    assert!(parse(json!({"$or": [{}, {"a": 1}]})).is_match_all());
    assert!(parse(json!({"$and": [{}, {}]})).is_match_all());
    assert!(!parse(json!({"a": 1})).and(Filter::all()).is_match_all());
}

#[test]
fn from_json_str() {
    let f = Filter::from_json_str(r#"{"a": {"$in": [1, "x"]}}"#).unwrap();
    assert_eq!(f, parse(json!({"a": {"$in": [1, "x"]}})));
    assert!(matches!(Filter::from_json_str("{"), Err(Error::InvalidFilter { .. })));
}

#[test]
fn errors() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "must be a JSON object"),
        (json!("a"), "must be a JSON object"),
        (json!(null), "must be a JSON object"),
        (json!({"a": null}), "null"),
        (json!({"a": [1]}), "use $in"),
        (json!({"a": {}}), "empty object"),
        (json!({"a": {"b": 1}}), "not an operator"),
        (json!({"a": {"$eq": null}}), "not null"),
        (json!({"a": {"$eq": [1]}}), "not a list"),
        (json!({"a": {"$ne": {"x": 1}}}), "not an object"),
        (json!({"a": {"$gt": true}}), "not a boolean"),
        (json!({"a": {"$lte": false}}), "not a boolean"),
        (json!({"a": {"$gte": null}}), "not null"),
        (json!({"a": {"$in": []}}), "non-empty list"),
        (json!({"a": {"$in": 1}}), "non-empty list"),
        (json!({"a": {"$nin": [1, null]}}), "not null"),
        (json!({"a": {"$in": [[1]]}}), "not a list"),
        (json!({"a": {"$regex": "x"}}), "unknown operator $regex"),
        (json!({"$foo": 1}), "unknown operator $foo"),
        (json!({"$eq": 1}), "must be applied to a metadata key"),
        (json!({"$in": [1]}), "must be applied to a metadata key"),
        (json!({"$and": []}), "non-empty list"),
        (json!({"$or": {}}), "non-empty list"),
        (json!({"$and": [1]}), "must be a filter"),
        (json!({"$or": [{"a": null}]}), "null"),
        (json!({"$contains": ""}), "non-empty string"),
        (json!({"$not_contains": 3}), "not a number"),
        (json!({"a\u{0}b": 1}), "NUL"),
    ];
    for (filter, needle) in cases {
        let reason = parse_err(filter.clone());
        assert!(reason.contains(needle), "{filter}: {reason:?} should contain {needle:?}");
        assert!(!reason.ends_with('.'), "{reason}");
    }
}

#[test]
fn limits() {
    // {"a": 1} is one level and each $and adds two: 15 of them make 31 levels, 16 make 33.
    let mut deep = json!({"a": 1});
    for _ in 0..15 {
        deep = json!({"$and": [deep]});
    }
    parse(deep.clone());
    let deeper = json!({"$or": [deep.clone()]});
    assert_eq!(parse_err(deeper.clone()), "a filter nests at most 32 levels of objects and lists");
    // As text, too, and far deeper than serde_json's own recursion limit (128): the limit
    // is named, not "not valid JSON".
    let text = format!("{}{{\"a\": 1}}{}", "{\"$and\": [".repeat(600), "]}".repeat(600));
    let e = Filter::from_json_str(&text).expect_err("refused").to_string();
    assert!(e.contains("nests at most 32 levels"), "{e}");
    assert_eq!(Filter::from_json_str(&deeper.to_string()).expect_err("refused").to_string(), format!("The filter is not valid: {}.", parse_err(deeper)));
    let e = Filter::from_json_str(r#"{"a": {"$gte": 1180591620717411303424}}"#).expect_err("refused").to_string();
    assert!(e.contains("the integer 1180591620717411303424 under the key \"a\"") && e.contains("64-bit"), "{e}");
    assert!(parse_err(json!({"a": {"$in": [u64::MAX]}})).contains("64-bit"));
    let e = parse_err(json!({"a": {"$gt": null}}));
    assert!(e.contains("$gt on \"a\" needs a number or a string, not null"), "{e}");
    let many: Vec<Value> = (0..MAX_TERMS).map(Value::from).collect();
    parse(json!({"a": {"$in": many}}));
    let too_many: Vec<Value> = (0..=MAX_TERMS).map(Value::from).collect();
    assert!(parse_err(json!({"a": {"$in": too_many}})).contains("more than"));
}
