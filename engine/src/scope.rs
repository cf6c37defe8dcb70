//! Memory scopes in the manner of mem0: whose memory a record is (`user_id`), which agent wrote
//! it (`agent_id`), in which session or run (`run_id`).
//!
//! A scope is stored as top-level string metadata under those three keys, so it is indexed by
//! the metadata index like any other field (a scoped recall is an indexed look-up, not a scan),
//! survives export and import, and is what every front end writes: the Python package's
//! `remember(..., user_id=...)` and the command line's `--user-id` store the same keys. Writing
//! a scope into metadata that already holds another value under one of its keys is refused,
//! never silently overwritten; reading with a scope adds an equality condition per key to the
//! filter.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::Metadata;

/// The metadata keys of a scope, in order: user, agent, run.
pub const SCOPE_KEYS: [&str; 3] = ["user_id", "agent_id", "run_id"];

/// Whose memory a record is: any of a user, an agent and a run (all `None`: no scope).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The user the memory belongs to.
    pub user_id: Option<String>,
    /// The agent that wrote or uses it.
    pub agent_id: Option<String>,
    /// The session or run it belongs to.
    pub run_id: Option<String>,
}

impl Scope {
    /// A user's scope.
    pub fn user(id: impl Into<String>) -> Scope {
        Scope { user_id: Some(id.into()), ..Scope::default() }
    }

    /// With an agent.
    #[must_use]
    pub fn agent(mut self, id: impl Into<String>) -> Scope {
        self.agent_id = Some(id.into());
        self
    }

    /// With a run.
    #[must_use]
    pub fn run(mut self, id: impl Into<String>) -> Scope {
        self.run_id = Some(id.into());
        self
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }

    /// The (key, value) pairs that are set, in [`SCOPE_KEYS`] order.
    fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        SCOPE_KEYS.into_iter().zip([&self.user_id, &self.agent_id, &self.run_id]).filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }

    /// An [`Error::InvalidArgument`] for an empty value.
    pub fn check(&self) -> Result<()> {
        match self.pairs().find(|(_, v)| v.is_empty()) {
            Some((k, _)) => Err(Error::invalid(format!("{k} must not be empty"))),
            None => Ok(()),
        }
    }

    /// `metadata` with the scope's keys added (metadata made when there is none and the scope
    /// is not empty). A key already present with another value is an
    /// [`Error::InvalidArgument`]; with the same value it is left as it is.
    pub fn stamp(&self, metadata: Option<Metadata>) -> Result<Option<Metadata>> {
        self.check()?;
        if self.is_empty() {
            return Ok(metadata);
        }
        let mut m = metadata.unwrap_or_default();
        for (k, v) in self.pairs() {
            match m.get(k) {
                Some(Value::String(s)) if s == v => {}
                Some(other) => return Err(Error::invalid(format!("the metadata holds {k} = {other}, which the scope's {k} {v:?} contradicts"))),
                None => {
                    m.insert(k.to_owned(), Value::String(v.to_owned()));
                }
            }
        }
        Ok(Some(m))
    }

    /// The filter of the scope's records (an equality per key that is set), `None` when empty.
    pub fn filter(&self) -> Result<Option<Filter>> {
        self.check()?;
        if self.is_empty() {
            return Ok(None);
        }
        let terms: Vec<Value> = self.pairs().map(|(k, v)| json!({ k: v })).collect();
        Filter::parse(&json!({ "$and": terms })).map(Some)
    }

    /// `filter` narrowed to the scope: both must match. `None` when both are absent.
    pub fn narrow(&self, filter: Option<Filter>) -> Result<Option<Filter>> {
        Ok(match (self.filter()?, filter) {
            (Some(s), Some(f)) => Some(f.and(s)),
            (s, f) => s.or(f),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stamping_adds_keys_and_refuses_contradictions() {
        let s = Scope::user("alice").run("r1");
        let m = s.stamp(None).unwrap().unwrap();
        assert_eq!(Value::Object(m.clone()), json!({"user_id": "alice", "run_id": "r1"}));
        assert_eq!(s.stamp(Some(m.clone())).unwrap(), Some(m), "the same values again");
        let mut other = Metadata::new();
        other.insert("user_id".into(), json!("bob"));
        assert!(matches!(s.stamp(Some(other)), Err(Error::InvalidArgument { .. })));
        let mut number = Metadata::new();
        number.insert("run_id".into(), json!(1));
        assert!(matches!(s.stamp(Some(number)), Err(Error::InvalidArgument { .. })));
        assert_eq!(Scope::default().stamp(None).unwrap(), None);
        assert!(matches!(Scope::user("").stamp(None), Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn the_filter_selects_the_scope() {
        let s = Scope::user("alice").agent("helper");
        let f = s.filter().unwrap().unwrap();
        let meta = |v: Value| v.as_object().cloned();
        assert!(f.matches(None, meta(json!({"user_id": "alice", "agent_id": "helper", "x": 1})).as_ref()));
        assert!(!f.matches(None, meta(json!({"user_id": "alice"})).as_ref()));
        assert!(!f.matches(None, None));
        let narrowed = s.narrow(Some(Filter::from_json_str(r#"{"x": 1}"#).unwrap())).unwrap().unwrap();
        assert!(narrowed.matches(None, meta(json!({"user_id": "alice", "agent_id": "helper", "x": 1})).as_ref()));
        assert!(!narrowed.matches(None, meta(json!({"user_id": "alice", "agent_id": "helper", "x": 2})).as_ref()));
        assert_eq!(Scope::default().narrow(None).unwrap(), None);
    }
}
