//! `memento-format`: the codecs of Memento's on-disk format, version 2. No I/O.
//!
//! The normative description is `FORMAT.md` beside this crate; every field table there is
//! checked against the [`Field`] constants here by `tests/spec_tables.rs`.
//!
//! The main pieces:
//! - [`superblock::Superblock`]: the vector file's header, kept in two checksummed copies.
//! - [`page`]: the page header, vector/quantized/record/tombstone/directory page bodies.
//! - [`wal`]: the write-ahead log header and record framing.
//! - [`graph`]: the graph file's header and level pages.
//! - [`mirror`]: the 8-byte trailer of every page of the SQLite mirror.
//!
//! Every decoder takes arbitrary bytes and returns [`DecodeError`] on anything malformed; none
//! panics (the fuzz targets and proptests hold it to that).
//!
//! ```
//! use memento_format::superblock::{Superblock, Metric};
//! let mut sb = Superblock::new([7; 16], 42, 384, Metric::Cosine, 65536);
//! sb.sequence = 3;
//! let bytes = sb.encode();
//! assert_eq!(Superblock::decode(&bytes).unwrap(), sb);
//! ```
#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("memento-format casts little-endian vector bytes in place; big-endian hosts are not supported");

/// The format version this crate writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest reader version that can read what this crate writes (version 1 readers do not
/// know quantized pages).
pub const MIN_READER_VERSION: u32 = 2;

/// One fixed-size field of an on-disk structure: its name as the spec's table spells it, its
/// offset and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Name in FORMAT.md.
    pub name: &'static str,
    /// Byte offset from the start of the structure.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

impl Field {
    /// The byte range of the field.
    pub const fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.size
    }
    pub(crate) fn get_u8(&self, b: &[u8]) -> u8 {
        b[self.offset]
    }
    pub(crate) fn get_u16(&self, b: &[u8]) -> u16 {
        u16::from_le_bytes([b[self.offset], b[self.offset + 1]])
    }
    pub(crate) fn get_u32(&self, b: &[u8]) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[self.range()]);
        u32::from_le_bytes(a)
    }
    pub(crate) fn get_u64(&self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[self.range()]);
        u64::from_le_bytes(a)
    }
    pub(crate) fn put_u8(&self, b: &mut [u8], v: u8) {
        b[self.offset] = v;
    }
    pub(crate) fn put_u16(&self, b: &mut [u8], v: u16) {
        b[self.range()].copy_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn put_u32(&self, b: &mut [u8], v: u32) {
        b[self.range()].copy_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn put_u64(&self, b: &mut [u8], v: u64) {
        b[self.range()].copy_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn put_bytes(&self, b: &mut [u8], v: &[u8]) {
        b[self.range()].copy_from_slice(v);
    }
    pub(crate) fn is_zero(&self, b: &[u8]) -> bool {
        b[self.range()].iter().all(|&x| x == 0)
    }
}

/// Declares one `Field` constant per field, each at the end of the one before, plus `FIELDS`
/// (all of them, in order) and `LEN` (the fixed part's size), and asserts at compile time that
/// `LEN` is the expected size.
macro_rules! layout {
    ($len:expr; $($name:ident : $size:expr),+ $(,)?) => {
        $crate::layout!(@chain 0usize; $($name : $size,)+);
        /// All fields in order, as FORMAT.md lists them.
        pub const FIELDS: &[$crate::Field] = &[$($name),+];
        /// Size of the fixed part in bytes.
        pub const LEN: usize = $len;
        const _: () = assert!(END == LEN, "field sizes do not add up to the structure size");
    };
    (@chain $off:expr; ) => {
        const END: usize = $off;
    };
    (@chain $off:expr; $name:ident : $size:expr, $($rest:tt)*) => {
        #[allow(non_upper_case_globals, missing_docs)]
        pub const $name: $crate::Field = $crate::Field { name: stringify!($name), offset: $off, size: $size };
        $crate::layout!(@chain $off + $size; $($rest)*);
    };
}
pub(crate) use layout;

pub mod graph;
pub mod mirror;
pub mod page;
pub mod superblock;
pub mod wal;

/// Why bytes could not be decoded. `offset` is relative to the start of the slice the decoder
/// was given; callers add the position of that slice in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the offending field or byte.
    pub offset: usize,
    /// What is wrong, as a phrase ("bad magic", "checksum mismatch", ...).
    pub reason: String,
}

impl DecodeError {
    /// An error at `offset` for `reason`.
    pub fn new(offset: usize, reason: impl Into<String>) -> Self {
        DecodeError { offset, reason: reason.into() }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.reason, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// CRC32 of `parts` in order, seeded with `seed`.
pub fn crc32(seed: u32, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Round `n` up to a multiple of `to` (a power of two).
pub const fn align_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

/// Checks a length field against the bytes that remain.
pub(crate) fn take<'a>(buf: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8], DecodeError> {
    at.checked_add(len).and_then(|end| buf.get(at..end)).ok_or_else(|| DecodeError::new(at, format!("{what} runs past the end of its container")))
}

pub(crate) fn utf8<'a>(b: &'a [u8], at: usize, what: &str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(b).map_err(|_| DecodeError::new(at, format!("{what} is not valid UTF-8")))
}
