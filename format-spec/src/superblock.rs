//! The vector file's superblock (FORMAT.md §2.1).

use crate::{DecodeError, FORMAT_VERSION, MIN_READER_VERSION};

/// Field offsets and sizes.
pub mod fields {
    crate::layout!(512;
        magic: 8,
        format_version: 4,
        min_reader_version: 4,
        sequence: 8,
        store_uuid: 16,
        file_salt: 4,
        dimension: 4,
        element_type: 1,
        metric: 1,
        flags: 2,
        page_size: 4,
        checkpoint_lsn: 8,
        next_slot: 8,
        page_count: 8,
        dir_page: 8,
        dir_span: 4,
        reserved_92: 4,
        live_count: 8,
        wal_generation: 8,
        model_id: 64,
        model_dim: 4,
        model_reserved: 4,
        model_hash: 32,
        reserved_216: 292,
        crc: 4,
    );
}

/// Size of one superblock copy.
pub const LEN: usize = fields::LEN;

/// `MEMENTOV`.
pub const MAGIC: [u8; 8] = *b"MEMENTOV";
/// Byte offset of superblock copy A in the vector file.
pub const SLOT_A_OFFSET: u64 = 0;
/// Byte offset of superblock copy B in the vector file.
pub const SLOT_B_OFFSET: u64 = 4096;
/// Smallest page size: the header page must hold both copies.
pub const MIN_PAGE_SIZE: u32 = 8192;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 16 << 20;
/// Largest dimension.
pub const MAX_DIMENSION: u32 = 65_536;
/// Flag bit 0: vectors are L2-normalised when written.
pub const FLAG_NORMALIZED: u16 = 1;
/// Flag bit 1: every vector of the vector pages also has an int8 copy in quantized pages.
pub const FLAG_QUANTIZED: u16 = 2;

/// How vectors are compared. Fixed when the store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine distance `1 − cos(a, b)`; vectors are normalised when written.
    Cosine,
    /// Negative dot product `−a·b` (so that smaller is closer).
    Dot,
    /// Squared Euclidean distance.
    L2,
}

impl Metric {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        match self {
            Metric::Cosine => 1,
            Metric::Dot => 2,
            Metric::L2 => 3,
        }
    }
    /// From the on-disk code.
    pub fn from_code(c: u8) -> Option<Metric> {
        match c {
            1 => Some(Metric::Cosine),
            2 => Some(Metric::Dot),
            3 => Some(Metric::L2),
            _ => None,
        }
    }
    /// The lowercase name (`cosine`, `dot`, `l2`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }
}

/// The embedding model a text store was created with; all empty for a raw-vector store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelIdentity {
    /// Model id, at most 64 bytes of UTF-8. Empty: no model.
    pub id: String,
    /// The model's output dimension.
    pub dim: u32,
    /// SHA-256 of the model file.
    pub hash: [u8; 32],
}

/// The superblock. Field meanings are in FORMAT.md §2.1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Superblock {
    pub format_version: u32,
    pub min_reader_version: u32,
    pub sequence: u64,
    pub store_uuid: [u8; 16],
    pub file_salt: u32,
    pub dimension: u32,
    /// 1 = float32 (the only type in version 1).
    pub element_type: u8,
    pub metric: Metric,
    pub flags: u16,
    pub page_size: u32,
    pub checkpoint_lsn: u64,
    pub next_slot: u64,
    pub page_count: u64,
    pub dir_page: u64,
    pub dir_span: u32,
    pub live_count: u64,
    pub wal_generation: u64,
    pub model: ModelIdentity,
}

impl Superblock {
    /// The superblock of a new, empty store (sequence 1, one page: the header page).
    pub fn new(store_uuid: [u8; 16], file_salt: u32, dimension: u32, metric: Metric, page_size: u32) -> Self {
        Superblock {
            format_version: FORMAT_VERSION,
            min_reader_version: MIN_READER_VERSION,
            sequence: 1,
            store_uuid,
            file_salt,
            dimension,
            element_type: 1,
            metric,
            flags: FLAG_QUANTIZED | if metric == Metric::Cosine { FLAG_NORMALIZED } else { 0 },
            page_size,
            checkpoint_lsn: 0,
            next_slot: 0,
            page_count: 1,
            dir_page: 0,
            dir_span: 0,
            live_count: 0,
            wal_generation: 1,
            model: ModelIdentity::default(),
        }
    }

    /// Encode to the 512-byte form, CRC included.
    ///
    /// # Panics
    /// If the model id is longer than 64 bytes (callers validate it first).
    pub fn encode(&self) -> [u8; LEN] {
        use fields::*;
        let mut b = [0u8; LEN];
        magic.put_bytes(&mut b, &MAGIC);
        format_version.put_u32(&mut b, self.format_version);
        min_reader_version.put_u32(&mut b, self.min_reader_version);
        sequence.put_u64(&mut b, self.sequence);
        store_uuid.put_bytes(&mut b, &self.store_uuid);
        file_salt.put_u32(&mut b, self.file_salt);
        dimension.put_u32(&mut b, self.dimension);
        element_type.put_u8(&mut b, self.element_type);
        metric.put_u8(&mut b, self.metric.code());
        flags.put_u16(&mut b, self.flags);
        page_size.put_u32(&mut b, self.page_size);
        checkpoint_lsn.put_u64(&mut b, self.checkpoint_lsn);
        next_slot.put_u64(&mut b, self.next_slot);
        page_count.put_u64(&mut b, self.page_count);
        dir_page.put_u64(&mut b, self.dir_page);
        dir_span.put_u32(&mut b, self.dir_span);
        live_count.put_u64(&mut b, self.live_count);
        wal_generation.put_u64(&mut b, self.wal_generation);
        let id = self.model.id.as_bytes();
        assert!(id.len() <= model_id.size, "model id longer than 64 bytes");
        b[model_id.offset..model_id.offset + id.len()].copy_from_slice(id);
        model_dim.put_u32(&mut b, self.model.dim);
        model_hash.put_bytes(&mut b, &self.model.hash);
        let c = crate::crc32(0, &[&b[..crc.offset]]);
        crc.put_u32(&mut b, c);
        b
    }

    /// Decode and verify a superblock copy. `b` must hold at least [`LEN`] bytes.
    ///
    /// Version checks are the caller's: this accepts any version number whose layout is v1's
    /// (a reader compares `min_reader_version` with what it implements).
    pub fn decode(b: &[u8]) -> Result<Superblock, DecodeError> {
        use fields::*;
        let b = b.get(..LEN).ok_or_else(|| DecodeError::new(b.len(), "superblock is truncated"))?;
        if b[magic.range()] != MAGIC {
            return Err(DecodeError::new(magic.offset, "bad superblock magic"));
        }
        let stored = crc.get_u32(b);
        if crate::crc32(0, &[&b[..crc.offset]]) != stored {
            return Err(DecodeError::new(crc.offset, "superblock checksum mismatch"));
        }
        let m = metric.get_u8(b);
        let metric_v = Metric::from_code(m).ok_or_else(|| DecodeError::new(metric.offset, format!("unknown metric code {m}")))?;
        let et = element_type.get_u8(b);
        if et != 1 {
            return Err(DecodeError::new(element_type.offset, format!("unknown element type {et}")));
        }
        let ps = page_size.get_u32(b);
        if !ps.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps) {
            return Err(DecodeError::new(page_size.offset, format!("page size {ps} is not a power of two from 8 KiB to 16 MiB")));
        }
        let dim = dimension.get_u32(b);
        if dim == 0 || dim > MAX_DIMENSION {
            return Err(DecodeError::new(dimension.offset, format!("dimension {dim} is out of range")));
        }
        let raw_id = &b[model_id.range()];
        let id_len = raw_id.iter().position(|&x| x == 0).unwrap_or(raw_id.len());
        if raw_id[id_len..].iter().any(|&x| x != 0) {
            return Err(DecodeError::new(model_id.offset, "model id is not zero-padded"));
        }
        let id = crate::utf8(&raw_id[..id_len], model_id.offset, "model id")?.to_owned();
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[model_hash.range()]);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[store_uuid.range()]);
        let pc = page_count.get_u64(b);
        if pc == 0 {
            return Err(DecodeError::new(page_count.offset, "page count is zero"));
        }
        let dp = dir_page.get_u64(b);
        let ds = dir_span.get_u32(b);
        if (dp == 0) != (ds == 0) || (dp != 0 && dp.checked_add(u64::from(ds)).is_none_or(|end| end > pc)) {
            return Err(DecodeError::new(dir_page.offset, "directory location is outside the file"));
        }
        Ok(Superblock {
            format_version: format_version.get_u32(b),
            min_reader_version: min_reader_version.get_u32(b),
            sequence: sequence.get_u64(b),
            store_uuid: uuid,
            file_salt: file_salt.get_u32(b),
            dimension: dim,
            element_type: et,
            metric: metric_v,
            flags: flags.get_u16(b),
            page_size: ps,
            checkpoint_lsn: checkpoint_lsn.get_u64(b),
            next_slot: next_slot.get_u64(b),
            page_count: pc,
            dir_page: dp,
            dir_span: ds,
            live_count: live_count.get_u64(b),
            wal_generation: wal_generation.get_u64(b),
            model: ModelIdentity { id, dim: model_dim.get_u32(b), hash },
        })
    }
}

/// Which of the two decoded copies is current: the valid one with the higher sequence.
/// Returns `None` when neither is valid.
pub fn pick_current(a: Result<Superblock, DecodeError>, b: Result<Superblock, DecodeError>) -> Option<(Superblock, Slot)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Some(if b.sequence > a.sequence { (b, Slot::B) } else { (a, Slot::A) }),
        (Ok(a), Err(_)) => Some((a, Slot::A)),
        (Err(_), Ok(b)) => Some((b, Slot::B)),
        (Err(_), Err(_)) => None,
    }
}

/// One of the two superblock copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// At offset 0.
    A,
    /// At offset 4096.
    B,
}

impl Slot {
    /// Byte offset in the vector file.
    pub fn offset(self) -> u64 {
        match self {
            Slot::A => SLOT_A_OFFSET,
            Slot::B => SLOT_B_OFFSET,
        }
    }
    /// The other copy.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_sb() -> impl Strategy<Value = Superblock> {
        (
            any::<u64>(),
            any::<[u8; 16]>(),
            any::<u32>(),
            1u32..=MAX_DIMENSION,
            prop_oneof![Just(Metric::Cosine), Just(Metric::Dot), Just(Metric::L2)],
            13u32..=24,
            any::<(u64, u64, u64, u64)>(),
            "[a-zA-Z0-9/_.-]{0,64}",
            any::<[u8; 32]>(),
        )
            .prop_map(|(seq, uuid, salt, dim, m, ps, (l, s, live, g), id, hash)| {
                let mut sb = Superblock::new(uuid, salt, dim, m, 1 << ps);
                sb.sequence = seq;
                sb.checkpoint_lsn = l;
                sb.next_slot = s;
                sb.live_count = live;
                sb.wal_generation = g;
                sb.page_count = 10;
                sb.dir_page = 5;
                sb.dir_span = 2;
                sb.model = ModelIdentity { id, dim, hash };
                sb
            })
    }

    proptest! {
        #[test]
        fn round_trip(sb in arb_sb()) {
            let b = sb.encode();
            prop_assert_eq!(Superblock::decode(&b).expect("decodes"), sb);
        }

        #[test]
        fn any_single_bit_flip_is_detected(sb in arb_sb(), bit in 0usize..(LEN * 8)) {
            let mut b = sb.encode();
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Superblock::decode(&b).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Superblock::decode(&b);
        }
    }

    #[test]
    fn picks_higher_valid_sequence() {
        let mut a = Superblock::new([1; 16], 1, 4, Metric::L2, 8192);
        let mut b = a.clone();
        a.sequence = 5;
        b.sequence = 6;
        let bad = Err(DecodeError::new(0, "x"));
        assert!(matches!(pick_current(Ok(a.clone()), Ok(b.clone())), Some((_, Slot::B))));
        assert!(matches!(pick_current(Ok(a.clone()), bad.clone()), Some((_, Slot::A))));
        assert!(pick_current(bad.clone(), bad).is_none());
    }
}
