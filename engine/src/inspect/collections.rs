//! Verifying a directory of collections (FORMAT.md §8): every collection as a store, and the
//! directory's own entries (leftovers of interrupted creates and deletes, entries that are not
//! collections). Read-only, like the rest of the inspector: nothing is removed.

use std::path::Path;

use super::finding::{finding, Finding, FindingKind};
use super::{Inspector, VerifyReport};
use crate::collections::{is_leftover, CATALOG_LOCK_FILE, MARKER_FILE};
use crate::error::{Error, Result};
use crate::Collections;

/// What [`verify_collections`] found.
#[derive(Debug)]
pub struct CollectionsVerifyReport {
    /// Each collection, by name, with its store's verification (or why it could not be read).
    pub collections: Vec<(String, Result<VerifyReport>)>,
    /// Findings about the directory itself (`collections.*`; their `file` is empty and their
    /// message names the entry).
    pub findings: Vec<Finding>,
}

impl CollectionsVerifyReport {
    /// Whether no collection has an error finding or could not be verified (the directory's own
    /// findings are warnings).
    pub fn is_ok(&self) -> bool {
        self.collections.iter().all(|(_, r)| r.as_ref().is_ok_and(VerifyReport::is_ok))
    }
}

/// Verifies every collection of the collections root `root` ([`Inspector::verify`] on each
/// store) and reports the root's leftovers and foreign entries. [`Error::InvalidArgument`] if
/// `root` is not a collections root.
pub fn verify_collections(root: &Path) -> Result<CollectionsVerifyReport> {
    let c = Collections::open_existing(root)?;
    let mut names = c.names()?;
    names.sort();
    let mut findings = Vec::new();
    let mut entries: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(format!("listing {}", root.display()), e))? {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", root.display()), e))?;
        entries.push(entry.file_name().to_string_lossy().into_owned());
    }
    entries.sort();
    for e in entries {
        if is_leftover(&e) {
            findings.push(finding(
                FindingKind::CollectionsLeftover,
                "",
                None,
                format!("{e} is left by an interrupted create or delete (removed at the next open)"),
            ));
        } else if e != MARKER_FILE && e != CATALOG_LOCK_FILE && !names.contains(&e) {
            findings.push(finding(
                FindingKind::CollectionsNotACollection,
                "",
                None,
                format!("{e} is not a collection (not a valid name, or not a directory); it is ignored"),
            ));
        }
    }
    let collections = names.into_iter().map(|n| {
        let r = Inspector::open(root.join(&n)).and_then(|i| i.verify());
        (n, r)
    });
    Ok(CollectionsVerifyReport { collections: collections.collect(), findings })
}
