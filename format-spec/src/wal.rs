//! The write-ahead log (FORMAT.md §3).

use crate::page::{update_field, update_flags};
use crate::{align_up, take, utf8, DecodeError};

/// The WAL file header.
pub mod header {
    crate::layout!(64;
        magic: 8,
        format_version: 4,
        salt: 4,
        generation: 8,
        start_lsn: 8,
        store_uuid: 16,
        reserved: 12,
        crc: 4,
    );
}

/// The record header.
pub mod record_header {
    crate::layout!(24;
        len: 4,
        crc: 4,
        lsn: 8,
        type_: 1,
        reserved: 7,
    );
}

/// Put payload, fixed part.
pub mod put {
    crate::layout!(24;
        slot: 8,
        id_len: 2,
        flags: 1,
        reserved_11: 1,
        text_len: 4,
        meta_len: 4,
        reserved_20: 4,
    );
}

/// Delete payload, fixed part.
pub mod delete {
    crate::layout!(16;
        slot: 8,
        id_len: 2,
        reserved: 6,
    );
}

/// Update payload, fixed part.
pub mod update {
    crate::layout!(24;
        slot: 8,
        flags: 1,
        reserved_9: 3,
        text_len: 4,
        meta_len: 4,
        reserved_20: 4,
    );
}

/// Commit payload.
pub mod commit {
    crate::layout!(24;
        first_lsn: 8,
        n_records: 4,
        reserved: 4,
        synced_through: 8,
    );
}

/// `MEMENTOW`.
pub const MAGIC: [u8; 8] = *b"MEMENTOW";
/// Size of the WAL header; the first record starts here.
pub const HEADER_LEN: usize = header::LEN;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = record_header::LEN;
/// Largest record (`len` field).
pub const MAX_RECORD_LEN: usize = 1 << 30;
/// Longest id in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// Record type codes.
pub const TYPE_PUT: u8 = 1;
/// Record type codes.
pub const TYPE_DELETE: u8 = 2;
/// Record type codes.
pub const TYPE_UPDATE: u8 = 3;
/// Record type codes.
pub const TYPE_COMMIT: u8 = 4;

/// The WAL header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct WalHeader {
    pub format_version: u32,
    pub salt: u32,
    pub generation: u64,
    pub start_lsn: u64,
    pub store_uuid: [u8; 16],
}

impl WalHeader {
    /// Encode with CRC.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        use header::*;
        let mut b = [0u8; LEN];
        magic.put_bytes(&mut b, &MAGIC);
        format_version.put_u32(&mut b, self.format_version);
        salt.put_u32(&mut b, self.salt);
        generation.put_u64(&mut b, self.generation);
        start_lsn.put_u64(&mut b, self.start_lsn);
        store_uuid.put_bytes(&mut b, &self.store_uuid);
        let c = crate::crc32(0, &[&b[..crc.offset]]);
        crc.put_u32(&mut b, c);
        b
    }
    /// Decode and verify.
    pub fn decode(b: &[u8]) -> Result<WalHeader, DecodeError> {
        use header::*;
        let b = b.get(..LEN).ok_or_else(|| DecodeError::new(b.len(), "WAL header is truncated"))?;
        if b[magic.range()] != MAGIC {
            return Err(DecodeError::new(magic.offset, "bad WAL magic"));
        }
        if crate::crc32(0, &[&b[..crc.offset]]) != crc.get_u32(b) {
            return Err(DecodeError::new(crc.offset, "WAL header checksum mismatch"));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[store_uuid.range()]);
        Ok(WalHeader {
            format_version: format_version.get_u32(b),
            salt: salt.get_u32(b),
            generation: generation.get_u64(b),
            start_lsn: start_lsn.get_u64(b),
            store_uuid: uuid,
        })
    }
}

/// A record's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    /// A new record with its vector.
    Put {
        /// New slot.
        slot: u64,
        /// Id.
        id: &'a str,
        /// Document text.
        text: Option<&'a str>,
        /// Metadata JSON object.
        metadata: Option<&'a str>,
        /// The vector's float32 little-endian bytes.
        vector: &'a [u8],
    },
    /// A slot dies.
    Delete {
        /// The slot.
        slot: u64,
        /// Its id, for inspection.
        id: &'a str,
    },
    /// Text and/or metadata change.
    Update {
        /// The slot.
        slot: u64,
        /// `None` unchanged, `Some(None)` null, `Some(Some(t))` set.
        text: Option<Option<&'a str>>,
        /// Same for metadata.
        metadata: Option<Option<&'a str>>,
    },
    /// Ends a transaction.
    Commit {
        /// LSN of the transaction's first record.
        first_lsn: u64,
        /// Records before this one in the transaction.
        n_records: u32,
        /// WAL bytes known fsynced when this was written.
        synced_through: u64,
    },
}

impl Payload<'_> {
    /// The record type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Payload::Put { .. } => TYPE_PUT,
            Payload::Delete { .. } => TYPE_DELETE,
            Payload::Update { .. } => TYPE_UPDATE,
            Payload::Commit { .. } => TYPE_COMMIT,
        }
    }

    /// Encoded record size (header + payload), without padding.
    pub fn record_len(&self) -> usize {
        RECORD_HEADER_LEN
            + match self {
                Payload::Put { id, text, metadata, vector, .. } => put::LEN + id.len() + text.map_or(0, str::len) + metadata.map_or(0, str::len) + vector.len(),
                Payload::Delete { id, .. } => delete::LEN + id.len(),
                Payload::Update { text, metadata, .. } => update::LEN + text.flatten().map_or(0, str::len) + metadata.flatten().map_or(0, str::len),
                Payload::Commit { .. } => commit::LEN,
            }
    }
}

/// Append one framed record (padded to 8 bytes) to `out`.
///
/// # Panics
/// If the record would exceed [`MAX_RECORD_LEN`] or an id exceeds [`MAX_ID_LEN`] (callers
/// validate sizes first).
pub fn encode_record(out: &mut Vec<u8>, salt: u32, lsn: u64, p: &Payload<'_>) {
    let len = p.record_len();
    assert!(len <= MAX_RECORD_LEN, "WAL record too large");
    let start = out.len();
    out.resize(start + RECORD_HEADER_LEN, 0);
    match *p {
        Payload::Put { slot, id, text, metadata, vector } => {
            assert!(id.len() <= MAX_ID_LEN);
            let s = out.len();
            out.resize(s + put::LEN, 0);
            let b = &mut out[s..];
            put::slot.put_u64(b, slot);
            put::id_len.put_u16(b, id.len() as u16);
            put::flags.put_u8(b, u8::from(text.is_some()) | (u8::from(metadata.is_some()) << 1));
            put::text_len.put_u32(b, text.map_or(0, str::len) as u32);
            put::meta_len.put_u32(b, metadata.map_or(0, str::len) as u32);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(text.unwrap_or("").as_bytes());
            out.extend_from_slice(metadata.unwrap_or("").as_bytes());
            out.extend_from_slice(vector);
        }
        Payload::Delete { slot, id } => {
            assert!(id.len() <= MAX_ID_LEN);
            let s = out.len();
            out.resize(s + delete::LEN, 0);
            let b = &mut out[s..];
            delete::slot.put_u64(b, slot);
            delete::id_len.put_u16(b, id.len() as u16);
            out.extend_from_slice(id.as_bytes());
        }
        Payload::Update { slot, text, metadata } => {
            let s = out.len();
            out.resize(s + update::LEN, 0);
            let b = &mut out[s..];
            update::slot.put_u64(b, slot);
            update::flags.put_u8(b, update_flags(text, metadata));
            let t = text.flatten().unwrap_or("");
            let m = metadata.flatten().unwrap_or("");
            update::text_len.put_u32(b, t.len() as u32);
            update::meta_len.put_u32(b, m.len() as u32);
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(m.as_bytes());
        }
        Payload::Commit { first_lsn, n_records, synced_through } => {
            let s = out.len();
            out.resize(s + commit::LEN, 0);
            let b = &mut out[s..];
            commit::first_lsn.put_u64(b, first_lsn);
            commit::n_records.put_u32(b, n_records);
            commit::synced_through.put_u64(b, synced_through);
        }
    }
    debug_assert_eq!(out.len() - start, len);
    let h = &mut out[start..];
    record_header::len.put_u32(h, len as u32);
    record_header::lsn.put_u64(h, lsn);
    record_header::type_.put_u8(h, p.type_code());
    let c = crate::crc32(salt, &[&h[..4], &h[8..len]]);
    record_header::crc.put_u32(h, c);
    out.resize(start + align_up(len, 8), 0);
}

/// What lies at a position of the WAL.
#[derive(Debug)]
pub enum Scan<'a> {
    /// A good record.
    Record {
        /// Its LSN.
        lsn: u64,
        /// Its payload.
        payload: Payload<'a>,
        /// Bytes from its start to the next record (padding included).
        next: usize,
    },
    /// The bytes end before the record does (a torn tail, or the end of the log when empty).
    Incomplete,
    /// Not a good record.
    Bad(DecodeError),
}

/// Read the record that starts at `buf[0]` (`buf` runs to the end of the file), checking its
/// framing, CRC and payload against the store's `dim`.
pub fn read_record(buf: &[u8], salt: u32, dim: usize) -> Scan<'_> {
    use record_header as rh;
    if buf.len() < RECORD_HEADER_LEN {
        return Scan::Incomplete;
    }
    let len = rh::len.get_u32(buf) as usize;
    if !(RECORD_HEADER_LEN..=MAX_RECORD_LEN).contains(&len) {
        return Scan::Bad(DecodeError::new(rh::len.offset, format!("record length {len} is out of range")));
    }
    if buf.len() < len {
        return Scan::Incomplete;
    }
    if crate::crc32(salt, &[&buf[..4], &buf[8..len]]) != rh::crc.get_u32(buf) {
        return Scan::Bad(DecodeError::new(rh::crc.offset, "record checksum mismatch"));
    }
    if !rh::reserved.is_zero(buf) {
        return Scan::Bad(DecodeError::new(rh::reserved.offset, "record reserved bytes are not zero"));
    }
    let lsn = rh::lsn.get_u64(buf);
    let body = &buf[RECORD_HEADER_LEN..len];
    match decode_payload(rh::type_.get_u8(buf), body, dim) {
        Ok(payload) => Scan::Record { lsn, payload, next: align_up(len, 8) },
        Err(mut e) => {
            e.offset += RECORD_HEADER_LEN;
            Scan::Bad(e)
        }
    }
}

fn decode_payload(t: u8, b: &[u8], dim: usize) -> Result<Payload<'_>, DecodeError> {
    match t {
        TYPE_PUT => {
            let f = take(b, 0, put::LEN, "put payload")?;
            let il = put::id_len.get_u16(f) as usize;
            let fl = put::flags.get_u8(f);
            let tl = put::text_len.get_u32(f) as usize;
            let ml = put::meta_len.get_u32(f) as usize;
            if fl & !3 != 0 || il == 0 || il > MAX_ID_LEN || (fl & 1 == 0 && tl != 0) || (fl & 2 == 0 && ml != 0) {
                return Err(DecodeError::new(0, "put record fields are inconsistent"));
            }
            let mut p = put::LEN;
            let id = utf8(take(b, p, il, "id")?, p, "id")?;
            p += il;
            let text = utf8(take(b, p, tl, "text")?, p, "text")?;
            p += tl;
            let meta = utf8(take(b, p, ml, "metadata")?, p, "metadata")?;
            p += ml;
            let vector = &b[p.min(b.len())..];
            if vector.len() != dim * 4 {
                return Err(DecodeError::new(p, format!("put record holds {} vector bytes, not {}", vector.len(), dim * 4)));
            }
            Ok(Payload::Put { slot: put::slot.get_u64(f), id, text: (fl & 1 != 0).then_some(text), metadata: (fl & 2 != 0).then_some(meta), vector })
        }
        TYPE_DELETE => {
            let f = take(b, 0, delete::LEN, "delete payload")?;
            let il = delete::id_len.get_u16(f) as usize;
            if delete::LEN + il != b.len() {
                return Err(DecodeError::new(delete::id_len.offset, "delete record length does not match its id"));
            }
            Ok(Payload::Delete { slot: delete::slot.get_u64(f), id: utf8(&b[delete::LEN..], delete::LEN, "id")? })
        }
        TYPE_UPDATE => {
            let f = take(b, 0, update::LEN, "update payload")?;
            let fl = update::flags.get_u8(f);
            let tl = update::text_len.get_u32(f) as usize;
            let ml = update::meta_len.get_u32(f) as usize;
            if fl & !15 != 0 || fl & 3 == 0 || update::LEN.checked_add(tl).and_then(|x| x.checked_add(ml)) != Some(b.len()) {
                return Err(DecodeError::new(0, "update record fields are inconsistent"));
            }
            let tb = &b[update::LEN..update::LEN + tl];
            let mb = &b[update::LEN + tl..];
            Ok(Payload::Update {
                slot: update::slot.get_u64(f),
                text: update_field(fl, 1, 4, tb, update::LEN, "text")?,
                metadata: update_field(fl, 2, 8, mb, update::LEN + tl, "metadata")?,
            })
        }
        TYPE_COMMIT => {
            if b.len() != commit::LEN {
                return Err(DecodeError::new(0, "commit record has the wrong length"));
            }
            Ok(Payload::Commit {
                first_lsn: commit::first_lsn.get_u64(b),
                n_records: commit::n_records.get_u32(b),
                synced_through: commit::synced_through.get_u64(b),
            })
        }
        _ => Err(DecodeError::new(record_header::type_.offset - RECORD_HEADER_LEN, format!("unknown record type {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_payload() -> impl Strategy<Value = (u8, u64, String, Option<String>, Option<String>, Vec<f32>, u8)> {
        (
            1u8..=4,
            any::<u64>(),
            "[a-z0-9]{1,20}",
            proptest::option::of(".{0,30}"),
            proptest::option::of("\\{\"a\":[0-9]\\}"),
            proptest::collection::vec(-10.0f32..10.0, 4),
            any::<u8>(),
        )
    }

    proptest! {
        #[test]
        fn records_round_trip(items in proptest::collection::vec(arb_payload(), 1..20), salt in any::<u32>()) {
            let mut buf = Vec::new();
            let mut want = Vec::new();
            for (i, (t, slot, id, text, meta, v, f)) in items.iter().enumerate() {
                let vb: &[u8] = bytemuck::cast_slice(v);
                let p = match t {
                    1 => Payload::Put { slot: *slot, id, text: text.as_deref(), metadata: meta.as_deref(), vector: vb },
                    2 => Payload::Delete { slot: *slot, id },
                    3 => Payload::Update { slot: *slot, text: if f % 2 == 0 { Some(text.as_deref()) } else { None }, metadata: if f % 2 == 0 { None } else { Some(meta.as_deref()) } },
                    _ => Payload::Commit { first_lsn: *slot, n_records: u32::from(*f), synced_through: 64 },
                };
                encode_record(&mut buf, salt, 100 + i as u64, &p);
                want.push(format!("{p:?}"));
            }
            prop_assert_eq!(buf.len() % 8, 0);
            let mut at = 0;
            let mut got = Vec::new();
            while at < buf.len() {
                match read_record(&buf[at..], salt, 4) {
                    Scan::Record { lsn, payload, next } => {
                        prop_assert_eq!(lsn, 100 + got.len() as u64);
                        got.push(format!("{payload:?}"));
                        at += next;
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(got, want);
            // Another generation's salt never verifies.
            prop_assert!(matches!(read_record(&buf, salt.wrapping_add(1), 4), Scan::Bad(_)));
        }

        #[test]
        fn truncated_record_is_incomplete_or_bad(cut in 0usize..200) {
            let mut buf = Vec::new();
            let v = [1.0f32; 4];
            encode_record(&mut buf, 5, 1, &Payload::Put { slot: 0, id: "abc", text: Some("hello"), metadata: None, vector: bytemuck::cast_slice(&v) });
            let cut = cut.min(buf.len() - 1);
            let r = read_record(&buf[..cut], 5, 4);
            prop_assert!(matches!(r, Scan::Incomplete | Scan::Bad(_)));
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400), salt in any::<u32>()) {
            let _ = read_record(&b, salt, 4);
            let _ = WalHeader::decode(&b);
        }
    }

    #[test]
    fn header_round_trip_and_flip() {
        let h = WalHeader { format_version: 1, salt: 99, generation: 3, start_lsn: 17, store_uuid: [4; 16] };
        let b = h.encode();
        assert_eq!(WalHeader::decode(&b).expect("decodes"), h);
        for bit in 0..(HEADER_LEN * 8) {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(WalHeader::decode(&c).is_err(), "flip of bit {bit} undetected");
        }
    }
}
