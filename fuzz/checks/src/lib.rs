//! The properties behind Memento's fuzz targets, as plain functions over arbitrary bytes. Each one
//! panics only when a property breaks, so cargo-fuzz (nightly, `fuzz/fuzz_targets/`) and
//! `cargo test` on stable (`tests/replay.rs`, over the committed corpora in `fuzz/corpus/`) run the
//! same code.
//!
//! - [`superblock`]: the superblock decoder is total, and what it accepts re-encodes to the same
//!   bytes.
//! - [`page`]: the page header, CRC check and every body decoder (records, tombstones, directory,
//!   float32 and int8 layouts) are total on any bytes, also after the fuzzer's page is sealed with
//!   a valid CRC, so the parsers behind the checksum are reached.
//! - [`wal`]: the WAL header and record scanner are total on any bytes; scanning always moves
//!   forward; records built from the input round-trip through the encoder and the scanner, and
//!   any truncation of an encoded record is `Incomplete`, never a wrong record.
//! - [`graph`]: the graph file's header decoder, level-page check and record check are total on
//!   any bytes; an accepted header re-encodes to itself and describes a possible file (levels in
//!   order, each with the pages its records need, the entry a record of the top level); a
//!   sealed level page verifies as its own page and level only, and fails with any one bit
//!   flipped; an accepted record's numbers are in range.
//! - [`mirror_trailer`]: the mirror's page-trailer check is total on any bytes; a sealed page
//!   passes as its own page number only, and fails with any one bit flipped.
//! - [`engine_ops`]: an operation list decoded from the input (adds, upserts, deletes, metadata
//!   updates, batches, checkpoints, clean reopens, crashes) runs against an in-memory store and a
//!   `BTreeMap` model, with an I/O fault (EIO, ENOSPC or a short write; once or forever) injected
//!   at a position the input chooses. Every acknowledged commit is in the store after a reopen, a
//!   failed commit is all or nothing, errors are typed, and `check_integrity` passes.

mod engine_ops;
mod format;
mod graph;

pub use engine_ops::{engine_ops, engine_ops_report, OpsReport};
pub use format::{mirror_trailer, page, superblock, wal};
pub use graph::graph;

/// Reads the fuzzer's bytes as a stream of small integers; past the end every read is 0, so any
/// input is a valid program.
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }

    pub(crate) fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    /// The unread rest.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.at..).unwrap_or(&[])
    }

    /// Up to `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let rest = self.rest();
        let n = n.min(rest.len());
        self.at += n;
        &rest[..n]
    }
}
