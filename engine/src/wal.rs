//! The write-ahead log: appending transactions, rotating generations, and the recovery scan
//! (FORMAT.md §3, §4.1, §4.3).

use std::path::Path;
use std::sync::Arc;

use memento_format::wal::{self, Payload, Scan, WalHeader};

use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile};

/// File name of the WAL.
pub const WAL_FILE: &str = "memento.wal";

/// One change, owned: what a transaction does, both when written and when replayed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Put { slot: u64, id: String, text: Option<String>, metadata: Option<String>, vector: Vec<f32> },
    Delete { slot: u64, id: String },
    Update { slot: u64, text: Option<Option<String>>, metadata: Option<Option<String>> },
}

impl Op {
    fn payload(&self) -> Payload<'_> {
        match self {
            Op::Put { slot, id, text, metadata, vector } => {
                Payload::Put { slot: *slot, id, text: text.as_deref(), metadata: metadata.as_deref(), vector: bytemuck::cast_slice(vector) }
            }
            Op::Delete { slot, id } => Payload::Delete { slot: *slot, id },
            Op::Update { slot, text, metadata } => {
                Payload::Update { slot: *slot, text: text.as_ref().map(|t| t.as_deref()), metadata: metadata.as_ref().map(|m| m.as_deref()) }
            }
        }
    }

    fn from_payload(p: Payload<'_>) -> Option<Op> {
        Some(match p {
            Payload::Put { slot, id, text, metadata, vector } => Op::Put {
                slot,
                id: id.to_owned(),
                text: text.map(str::to_owned),
                metadata: metadata.map(str::to_owned),
                vector: vector.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            },
            Payload::Delete { slot, id } => Op::Delete { slot, id: id.to_owned() },
            Payload::Update { slot, text, metadata } => {
                Op::Update { slot, text: text.map(|t| t.map(str::to_owned)), metadata: metadata.map(|m| m.map(str::to_owned)) }
            }
            Payload::Commit { .. } => return None,
        })
    }

    /// Bytes this op adds to the WAL, for size checks before encoding.
    pub fn encoded_len(&self) -> usize {
        memento_format::align_up(self.payload().record_len(), 8)
    }
}

/// A committed transaction: its ops (LSNs `first_lsn..commit_lsn`) and its commit LSN.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub first_lsn: u64,
    pub commit_lsn: u64,
    pub ops: Vec<Op>,
}

/// The open WAL of the current generation.
pub(crate) struct Wal {
    pub file: Arc<dyn StorageFile>,
    pub header: WalHeader,
    /// Where the next record goes.
    pub end: u64,
    /// Bytes known fsynced.
    pub synced: u64,
}

/// What recovery found in the WAL.
pub(crate) struct Recovered {
    pub wal: Wal,
    pub txns: Vec<Txn>,
    /// Bytes dropped from a torn tail, with where and why.
    pub dropped_tail: Option<(u64, u64, String)>,
}

pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}

impl Wal {
    /// Create generation `generation` (start_lsn `start_lsn`) atomically and open it.
    pub fn create(storage: &dyn Storage, generation: u64, start_lsn: u64, store_uuid: [u8; 16]) -> Result<Wal> {
        let header = WalHeader { format_version: memento_format::FORMAT_VERSION, salt: random_u64() as u32, generation, start_lsn, store_uuid };
        let tmp = format!("{WAL_FILE}.new");
        let io = |what: &str, e| Error::io(format!("{what} a new WAL"), e);
        let f = storage.open(&tmp, true).map_err(|e| io("creating", e))?;
        f.set_len(0).map_err(|e| io("truncating", e))?;
        f.write_all_at(&header.encode(), 0).map_err(|e| io("writing", e))?;
        f.sync_all().map_err(|e| io("syncing", e))?;
        storage.rename(&tmp, WAL_FILE).map_err(|e| io("renaming", e))?;
        storage.sync_dir().map_err(|e| io("syncing the directory after creating", e))?;
        let file = storage.open(WAL_FILE, false).map_err(|e| io("reopening", e))?;
        let end = wal::HEADER_LEN as u64;
        Ok(Wal { file, header, end, synced: end })
    }

    /// Encode a transaction starting at `first_lsn`; returns the bytes and the commit LSN.
    pub fn encode_txn(&self, first_lsn: u64, ops: &[Op], synced_through: u64) -> (Vec<u8>, u64) {
        let size: usize = ops.iter().map(Op::encoded_len).sum::<usize>() + 48;
        let mut buf = Vec::with_capacity(size);
        let mut lsn = first_lsn;
        for op in ops {
            wal::encode_record(&mut buf, self.header.salt, lsn, &op.payload());
            lsn += 1;
        }
        let commit = Payload::Commit { first_lsn, n_records: ops.len() as u32, synced_through };
        wal::encode_record(&mut buf, self.header.salt, lsn, &commit);
        (buf, lsn)
    }

    /// Append encoded bytes at the end.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<u64> {
        self.file.write_all_at(bytes, self.end)?;
        self.end += bytes.len() as u64;
        Ok(self.end)
    }
}

/// Open the WAL of generation `generation` and scan it (FORMAT.md §4.3 steps 3–4). With
/// `repair`, a torn tail is truncated; without it (read-only inspection) it is only reported.
pub(crate) fn recover(
    storage: &dyn Storage,
    path: &Path,
    generation: u64,
    start_lsn: u64,
    store_uuid: [u8; 16],
    dim: usize,
    repair: bool,
) -> Result<Recovered> {
    let exists = storage.exists(WAL_FILE).map_err(|e| Error::io("looking for the WAL", e))?;
    if !exists {
        let wal = Wal::create(storage, generation, start_lsn, store_uuid)?;
        return Ok(Recovered { wal, txns: Vec::new(), dropped_tail: None });
    }
    let file = storage.open(WAL_FILE, false).map_err(|e| Error::io("opening the WAL", e))?;
    let len = file.len().map_err(|e| Error::io("reading the WAL's length", e))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).map_err(|e| Error::io("reading the WAL", e))?;
    let header = WalHeader::decode(&bytes).map_err(|e| Error::corrupted(path, e.offset as u64, e.reason))?;
    if header.store_uuid != store_uuid {
        return Err(Error::corrupted(path, wal::header::store_uuid.offset as u64, "the WAL belongs to another store"));
    }
    if header.format_version > memento_format::FORMAT_VERSION {
        return Err(Error::Incompatible { reason: format!("the WAL was written by format version {}", header.format_version) });
    }
    if header.generation + 1 == generation {
        // A checkpoint made its superblock durable but crashed before rotating the WAL: every
        // record here is already in the pages.
        let wal = Wal::create(storage, generation, start_lsn, store_uuid)?;
        return Ok(Recovered { wal, txns: Vec::new(), dropped_tail: None });
    }
    if header.generation != generation {
        return Err(Error::corrupted(
            path,
            wal::header::generation.offset as u64,
            format!("the WAL is generation {} but the checkpoint expects {generation}", header.generation),
        ));
    }
    if header.start_lsn != start_lsn {
        return Err(Error::corrupted(
            path,
            wal::header::start_lsn.offset as u64,
            format!("the WAL starts at LSN {} but the checkpoint ends at {}", header.start_lsn, start_lsn - 1),
        ));
    }
    let scan = scan(&bytes, header.salt, start_lsn, dim, &mut |_| {});
    let mut dropped_tail = None;
    if let Some(tail) = scan.tail {
        if let Some(q) = tail.vouched_by {
            return Err(Error::corrupted(
                path,
                tail.offset,
                format!("{}, inside the part of the log that was already fsynced (a later commit record at offset {q} vouches for it)", tail.reason),
            ));
        }
        dropped_tail = Some((tail.good_end, tail.bytes, tail.reason));
        if repair {
            file.set_len(tail.good_end).map_err(|e| Error::io("truncating the WAL's torn tail", e))?;
            file.sync_all().map_err(|e| Error::io("syncing the truncated WAL", e))?;
        }
    }
    let txns = scan.txns;
    let good_end = scan.good_end as usize;
    if repair {
        // Whatever the log holds now is what later commit records may vouch for as durable.
        file.sync_all().map_err(|e| Error::io("syncing the WAL", e))?;
    }
    let end = good_end as u64;
    Ok(Recovered { wal: Wal { file, header, end, synced: end }, txns, dropped_tail })
}

/// One good record met by [`scan`], in log order.
pub(crate) struct ScannedRecord<'a> {
    /// Byte offset of the record in the WAL file.
    pub offset: u64,
    /// The record's `len` field (header and payload, without padding).
    pub len: u32,
    pub lsn: u64,
    pub payload: &'a Payload<'a>,
}

/// Where the good part of a WAL ends, and why (FORMAT.md §4.3 step 4).
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    /// Offset of the first byte that is not part of a good record (`p` in the spec).
    pub offset: u64,
    /// End of the last complete transaction: what recovery keeps.
    pub good_end: u64,
    /// Bytes from `good_end` to the end of the file: what recovery drops.
    pub bytes: u64,
    /// Why the record at `offset` is not good.
    pub reason: String,
    /// Offset of a later good commit record whose `synced_through` covers `offset`: the
    /// damage is in the part of the log that was fsynced, and opening is refused.
    pub vouched_by: Option<u64>,
}

/// What [`scan`] found.
pub(crate) struct WalScan {
    /// The complete transactions, in order.
    pub txns: Vec<Txn>,
    /// End of the last complete transaction.
    pub good_end: u64,
    /// Anything past `good_end`: a torn tail, an uncommitted transaction, or damage.
    pub tail: Option<Tail>,
}

/// One step of reading a log: the next complete transaction, or where and why reading stops.
enum Step {
    Txn { txn: Txn, next: usize },
    Stop { at: usize, reason: String },
}

/// Reads the transaction at `pos` (its records, then its commit record), whose first LSN must
/// be `expect`; every good record is shown to `visit`, even when the transaction is not
/// complete.
fn read_txn(bytes: &[u8], mut pos: usize, mut expect: u64, salt: u32, dim: usize, visit: &mut dyn FnMut(ScannedRecord<'_>)) -> Step {
    let mut ops: Vec<Op> = Vec::new();
    let mut first = 0;
    loop {
        if pos >= bytes.len() {
            let reason = if ops.is_empty() { "the end of the log" } else { "a transaction has no commit record" };
            return Step::Stop { at: pos, reason: reason.into() };
        }
        match wal::read_record(&bytes[pos..], salt, dim) {
            Scan::Incomplete => return Step::Stop { at: pos, reason: "the last record is incomplete".into() },
            Scan::Bad(e) => return Step::Stop { at: pos + e.offset, reason: e.reason },
            Scan::Record { lsn, payload, next } => {
                if lsn != expect {
                    return Step::Stop { at: pos + 8, reason: format!("record LSN {lsn} where {expect} was expected") };
                }
                if let Payload::Commit { first_lsn, n_records, .. } = payload {
                    if ops.is_empty() || first_lsn != first || n_records as usize != ops.len() {
                        return Step::Stop { at: pos, reason: "a commit record does not match the records before it".into() };
                    }
                }
                let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
                visit(ScannedRecord { offset: pos as u64, len, lsn, payload: &payload });
                match payload {
                    Payload::Commit { first_lsn, .. } => return Step::Txn { txn: Txn { first_lsn, commit_lsn: lsn, ops }, next: pos + next },
                    p => {
                        if ops.is_empty() {
                            first = lsn;
                        }
                        ops.extend(Op::from_payload(p));
                    }
                }
                pos += next;
                expect += 1;
            }
        }
    }
}

/// What a reader in another process found in the log (FORMAT.md §4.4 step 3).
pub(crate) struct Followed {
    /// The complete transactions from the offset given, up to the one with commit LSN `upto`.
    pub txns: Vec<Txn>,
    /// The offset after the last of them.
    pub end: u64,
    /// Whether the transaction with commit LSN `upto` was among them.
    pub reached: bool,
}

/// Reads the complete transactions of an open WAL file from `offset` (where the transaction
/// with first LSN `next_lsn` begins) up to the one whose commit LSN is `upto`, without
/// changing the file: what a reader scans to follow the writer. Stops early, with `reached`
/// false, where the log holds no more complete transactions.
pub(crate) fn follow(file: &dyn StorageFile, salt: u32, offset: u64, next_lsn: u64, dim: usize, upto: u64) -> Result<Followed> {
    let len = file.len().map_err(|e| Error::io("reading the WAL's length", e))?;
    let mut out = Followed { txns: Vec::new(), end: offset, reached: upto < next_lsn };
    if out.reached || len <= offset {
        return Ok(out);
    }
    let mut bytes = vec![0u8; (len - offset) as usize];
    file.read_exact_at(&mut bytes, offset).map_err(|e| Error::io("reading the WAL", e))?;
    let (mut pos, mut expect) = (0, next_lsn);
    while let Step::Txn { txn, next } = read_txn(&bytes, pos, expect, salt, dim, &mut |_| {}) {
        pos = next;
        expect = txn.commit_lsn + 1;
        out.end = offset + next as u64;
        let done = txn.commit_lsn >= upto;
        out.txns.push(txn);
        if done {
            out.reached = true;
            break;
        }
    }
    Ok(out)
}

/// The recovery scan (FORMAT.md §4.3 step 4) over the bytes of a whole WAL file whose header
/// has been checked: every good record is shown to `visit` (uncommitted ones too), and the
/// file is not touched. [`recover`] truncates what this reports as the tail; the inspector
/// only reports it, so both judge a log alike.
pub(crate) fn scan(bytes: &[u8], salt: u32, start_lsn: u64, dim: usize, visit: &mut dyn FnMut(ScannedRecord<'_>)) -> WalScan {
    let mut pos = wal::HEADER_LEN;
    let mut expect = start_lsn;
    let mut txns = Vec::new();
    let mut good_end = pos.min(bytes.len());
    let mut last_lsn = start_lsn.saturating_sub(1);
    let (p, reason) = loop {
        match read_txn(bytes, pos, expect, salt, dim, &mut |r| {
            last_lsn = r.lsn;
            visit(r)
        }) {
            Step::Txn { txn, next } => {
                expect = txn.commit_lsn + 1;
                txns.push(txn);
                pos = next;
                good_end = next;
            }
            Step::Stop { at, reason } => break (at, reason),
        }
    };
    let mut tail = None;
    if good_end < bytes.len() {
        // Was the damage at `p` inside the part of the log already fsynced? Any good commit
        // record further on says how far the log was durable when it was written.
        let mut vouched_by = None;
        let mut q = memento_format::align_up(p + 1, 8);
        while q + 48 <= bytes.len() {
            let b = &bytes[q..];
            if b[16] == wal::TYPE_COMMIT && u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == 48 {
                if let Scan::Record { lsn, payload: Payload::Commit { synced_through, .. }, .. } = wal::read_record(b, salt, dim) {
                    if lsn > last_lsn && synced_through > p as u64 {
                        vouched_by = Some(q as u64);
                        break;
                    }
                }
            }
            q += 8;
        }
        tail = Some(Tail { offset: p as u64, good_end: good_end as u64, bytes: (bytes.len() - good_end) as u64, reason, vouched_by });
    }
    WalScan { txns, good_end: good_end as u64, tail }
}
