//! Both superblock copies, field by field.

use memento_format::superblock::{self, Slot, Superblock};
use memento_format::DecodeError;

use super::files::RoFile;
use super::finding::{finding, Finding, FindingKind};
use super::report::{CopyStatus, FieldValue, SuperblockCopy, SuperblockField};
use crate::error::{Error, Result};
use crate::vecfile::VEC_FILE;

pub(super) struct Superblocks {
    pub(super) copies: Vec<SuperblockCopy>,
    pub(super) current: Option<(Superblock, Slot)>,
    /// Raw bytes of both copies, to notice a checkpoint during a read.
    pub(super) raw: Vec<Option<Vec<u8>>>,
}

impl Superblocks {
    pub(super) fn trailing_bytes(&self, vf: Option<&RoFile>) -> u64 {
        match (&self.current, vf) {
            (Some((sb, _)), Some(f)) => f.len.saturating_sub(sb.page_count.saturating_mul(u64::from(sb.page_size))),
            _ => 0,
        }
    }
}

pub(super) fn read_superblocks(vf: Option<&RoFile>, findings: &mut Vec<Finding>) -> Result<Superblocks> {
    let Some(vf) = vf else {
        findings.push(finding(FindingKind::VecMissing, VEC_FILE, None, "there is no vector file: the store cannot be opened".into()));
        return Ok(Superblocks { copies: Vec::new(), current: None, raw: Vec::new() });
    };
    let mut copies = Vec::new();
    let mut decoded = Vec::new();
    let mut raw = Vec::new();
    for (slot, name) in [(Slot::A, 'A'), (Slot::B, 'B')] {
        let bytes = vf.read(slot.offset(), superblock::LEN as u64).map_err(|e| Error::io("reading a superblock", e))?;
        let mut copy =
            SuperblockCopy { slot: name, offset: slot.offset(), status: CopyStatus::Missing, current: false, crc: None, fields: Vec::new(), decoded: None };
        let result = match &bytes {
            None => Err(DecodeError::new(0, "the file is too short to hold it")),
            Some(b) => {
                copy.fields = superblock_fields(b);
                let c = superblock::fields::crc;
                let stored = u32::from_le_bytes([b[c.offset], b[c.offset + 1], b[c.offset + 2], b[c.offset + 3]]);
                copy.crc = Some((stored, memento_format::crc32(0, &[&b[..c.offset]])));
                Superblock::decode(b)
            }
        };
        match (&result, &bytes) {
            (Ok(sb), _) => {
                copy.status = CopyStatus::Valid;
                copy.decoded = Some(sb.clone());
            }
            (Err(_), Some(b)) if b.iter().all(|&x| x == 0) => copy.status = CopyStatus::Empty,
            (Err(e), Some(_)) => copy.status = CopyStatus::Invalid { offset: e.offset, reason: e.reason.clone() },
            (Err(_), None) => copy.status = CopyStatus::Missing,
        }
        raw.push(bytes);
        decoded.push(result);
        copies.push(copy);
    }
    let b = decoded.pop().unwrap_or_else(|| Err(DecodeError::new(0, "missing")));
    let a = decoded.pop().unwrap_or_else(|| Err(DecodeError::new(0, "missing")));
    let current = superblock::pick_current(a, b);
    if let Some((sb, slot)) = &current {
        let i = usize::from(*slot == Slot::B);
        copies[i].current = true;
        let other = &copies[1 - i];
        match &other.status {
            CopyStatus::Valid => {
                if let Some(o) = &other.decoded {
                    if o.store_uuid != sb.store_uuid || o.file_salt != sb.file_salt || o.dimension != sb.dimension || o.metric != sb.metric || o.page_size != sb.page_size {
                        findings.push(finding(
                            FindingKind::SuperblockMismatch,
                            VEC_FILE,
                            Some(other.offset),
                            format!("copy {} is valid but describes another store (identity, salt, dimension, metric or page size differ from copy {})", other.slot, copies[i].slot),
                        ));
                    }
                }
            }
            CopyStatus::Empty if sb.sequence <= 1 => {} // never written yet: normal before the first checkpoint
            CopyStatus::Empty => findings.push(finding(
                FindingKind::SuperblockChecksum,
                VEC_FILE,
                Some(other.offset),
                format!("copy {} is all zeros although the store has checkpointed (sequence {}); the store opens from copy {}, and its next checkpoint rewrites copy {}", other.slot, sb.sequence, copies[i].slot, other.slot),
            )),
            CopyStatus::Invalid { offset, reason } => findings.push(finding(
                if reason.contains("checksum") { FindingKind::SuperblockChecksum } else { FindingKind::SuperblockInvalid },
                VEC_FILE,
                Some(other.offset + *offset as u64),
                format!("copy {}: {reason}; the store still opens from copy {} (sequence {}), and its next checkpoint rewrites copy {}", other.slot, copies[i].slot, sb.sequence, other.slot),
            )),
            CopyStatus::Missing => findings.push(finding(FindingKind::SuperblockInvalid, VEC_FILE, Some(other.offset), format!("copy {}: the file is too short to hold it", other.slot))),
        }
        if sb.min_reader_version > memento_format::FORMAT_VERSION {
            findings.push(finding(
                FindingKind::SuperblockVersion,
                VEC_FILE,
                Some(copies[i].offset + superblock::fields::min_reader_version.offset as u64),
                format!("the store needs a reader of format version {}; this is version {}", sb.min_reader_version, memento_format::FORMAT_VERSION),
            ));
        }
    } else {
        for c in &copies {
            let (kind, off, why) = match &c.status {
                CopyStatus::Invalid { offset, reason } => {
                    (if reason.contains("checksum") { FindingKind::SuperblockChecksum } else { FindingKind::SuperblockInvalid }, *offset as u64, reason.clone())
                }
                CopyStatus::Empty => (FindingKind::SuperblockInvalid, 0, "all zeros".to_string()),
                _ => (FindingKind::SuperblockInvalid, 0, "the file is too short to hold it".to_string()),
            };
            findings.push(finding(kind, VEC_FILE, Some(c.offset + off), format!("copy {}: {why}", c.slot)));
        }
        findings.push(finding(FindingKind::SuperblockNoneValid, VEC_FILE, Some(0), "neither superblock copy is valid: the store cannot be opened".into()));
    }
    Ok(Superblocks { copies, current, raw })
}

/// Every field of a superblock copy as stored, read through the codec's field table.
pub(super) fn superblock_fields(b: &[u8]) -> Vec<SuperblockField> {
    let mut out = Vec::new();
    for f in superblock::fields::FIELDS {
        let Some(bytes) = b.get(f.range()) else { continue };
        let reserved = f.name.contains("reserved");
        if reserved && bytes.iter().all(|&x| x == 0) {
            continue;
        }
        let value = match (f.name, f.size) {
            ("magic", _) => FieldValue::Text(String::from_utf8_lossy(bytes).into_owned()),
            ("model_id", _) => {
                let end = bytes.iter().position(|&x| x == 0).unwrap_or(bytes.len());
                FieldValue::Text(String::from_utf8_lossy(&bytes[..end]).into_owned())
            }
            (_, 1 | 2 | 4 | 8) if !reserved => {
                let mut a = [0u8; 8];
                a[..f.size].copy_from_slice(bytes);
                FieldValue::UInt(u64::from_le_bytes(a))
            }
            _ => FieldValue::Hex(hex(bytes)),
        };
        let note = match (f.name, &value) {
            ("metric", FieldValue::UInt(c)) => {
                Some(u8::try_from(*c).ok().and_then(superblock::Metric::from_code).map_or("unknown metric".to_string(), |m| m.name().to_string()))
            }
            ("element_type", FieldValue::UInt(1)) => Some("float32".into()),
            ("element_type", _) => Some("unknown element type".into()),
            ("flags", FieldValue::UInt(v)) => {
                let mut names = Vec::new();
                if v & u64::from(superblock::FLAG_NORMALIZED) != 0 {
                    names.push("normalized");
                }
                if v & u64::from(superblock::FLAG_QUANTIZED) != 0 {
                    names.push("quantized");
                }
                Some(if names.is_empty() { "none".into() } else { names.join(", ") })
            }
            _ => None,
        };
        out.push(SuperblockField { name: f.name, offset: f.offset, value, note });
    }
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
