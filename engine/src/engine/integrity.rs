//! [`Engine::check_integrity`]: the inspector's checks ([`crate::inspect`]), run on the open
//! store through its own storage and its own mirror connection. There is one implementation
//! of every check; this file only decides what an open store's first error is.

use std::sync::Arc;

use super::Engine;
use crate::error::{Error, Result};
use crate::inspect::{Finding, FindingKind, Inspector, Severity};

impl Engine {
    /// Check everything, as `memento-inspect verify` does: every superblock, page and WAL
    /// record checksum and structure, the int8 copies against their vectors, the mirror's own
    /// integrity, and the mirror against the log both ways (the same live records, with the
    /// same ids, texts and metadata). Returns the first error found: [`Error::Corrupted`]
    /// naming the file and the finding's kind, or the mirror's own error when the mirror is
    /// damaged or cannot be read. Warnings (such as a torn WAL tail) are not errors, nor is a
    /// damaged superblock copy that the engine does not use (see
    /// [`crate::inspect::FindingKind::only_redundancy_lost`]).
    pub fn check_integrity(&self) -> Result<()> {
        self.process.check()?;
        // No commit and no checkpoint while the files are read (the lock order: writer, state,
        // mirror); searches and reads go on.
        let _writer = self.writer.as_ref().map(|w| w.lock());
        let _state = self.state.read();
        let mirror = self.mirror.lock();
        let (report, mirror_error) = Inspector::over(Arc::clone(&self.storage)).verify_with(Some(&mirror))?;
        let Some(first) = report.findings.iter().find(|f| f.severity == Severity::Error && !f.kind.only_redundancy_lost()) else {
            return Ok(());
        };
        Err(match mirror_error {
            Some(e) if is_mirror_failure(first) => e,
            _ => Error::corrupted(self.dir.join(first.file), first.offset.unwrap_or(0), format!("{} ({})", first.message, first.kind)),
        })
    }
}

/// A finding made from an error the mirror returned (rather than a disagreement with the log).
fn is_mirror_failure(f: &Finding) -> bool {
    matches!(f.kind, FindingKind::MirrorDamaged | FindingKind::MirrorUnreadable)
}
