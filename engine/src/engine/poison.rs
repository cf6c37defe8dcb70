//! Poisoning: after a failed write or fsync the state on disk is uncertain, so the engine
//! refuses every further write until it is closed and reopened (which recovers to the last
//! durable commit).

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// The first failure that poisoned the engine, if any. Its lock is a leaf: nothing else is
/// taken while it is held.
#[derive(Default)]
pub(super) struct Poison {
    cause: Mutex<Option<String>>,
}

impl Poison {
    /// Records `e` as the cause (the first one wins) and hands it back to be returned.
    pub(super) fn record(&self, e: Error) -> Error {
        let mut p = self.cause.lock();
        if p.is_none() {
            *p = Some(e.to_string());
        }
        e
    }

    /// [`Error::Poisoned`] once a failure was recorded.
    pub(super) fn check(&self) -> Result<()> {
        match self.cause.lock().clone() {
            Some(cause) => Err(Error::Poisoned { cause }),
            None => Ok(()),
        }
    }

    pub(super) fn is_set(&self) -> bool {
        self.cause.lock().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_is_kept() {
        let p = Poison::default();
        assert!(p.check().is_ok() && !p.is_set());
        p.record(Error::invalid("first"));
        p.record(Error::invalid("second"));
        match p.check() {
            Err(Error::Poisoned { cause }) => assert!(cause.contains("first") && !cause.contains("second"), "{cause}"),
            other => panic!("{other:?}"),
        }
    }
}
