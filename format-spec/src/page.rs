//! Pages of the vector file (FORMAT.md §2.2–2.7).

use crate::{align_up, take, utf8, DecodeError};

/// The page header.
pub mod header {
    crate::layout!(64;
        magic: 4,
        page_type: 2,
        flags: 2,
        page_no: 8,
        span: 4,
        count: 4,
        checkpoint_seq: 8,
        min_lsn: 8,
        max_lsn: 8,
        payload_len: 4,
        aux: 8,
        crc: 4,
    );
}

/// A record page entry's fixed part.
pub mod record_entry {
    crate::layout!(32;
        kind: 1,
        flags: 1,
        id_len: 2,
        text_len: 4,
        meta_len: 4,
        reserved: 4,
        slot: 8,
        lsn: 8,
    );
}

/// A tombstone page entry.
pub mod tombstone_entry {
    crate::layout!(16;
        slot: 8,
        lsn: 8,
    );
}

/// A directory entry.
pub mod dir_entry {
    crate::layout!(24;
        page_no: 8,
        first_slot: 8,
        span: 4,
        page_type: 2,
        reserved: 2,
    );
}

/// The per-vector parameters of a quantized page (FORMAT.md §2.8).
pub mod quant_params {
    crate::layout!(16;
        scale: 4,
        code_sum: 4,
        sq_norm: 4,
        reserved: 4,
    );
}

/// `MPAG`.
pub const PAGE_MAGIC: [u8; 4] = *b"MPAG";
/// Size of the page header.
pub const HEADER_LEN: usize = header::LEN;

/// Page types (FORMAT.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageType {
    /// Slots and vectors.
    Vector,
    /// Id, text and metadata entries.
    Record,
    /// Deleted slots.
    Tombstone,
    /// The list of all pages.
    Directory,
    /// Int8 copies of vectors (version 2).
    Quantized,
    /// Level 0 of the graph file (FORMAT.md §7).
    GraphLevel0,
    /// An upper level of the graph file (FORMAT.md §7).
    GraphUpper,
}

impl PageType {
    /// On-disk code.
    pub fn code(self) -> u16 {
        match self {
            PageType::Vector => 1,
            PageType::Record => 2,
            PageType::Tombstone => 3,
            PageType::Directory => 4,
            PageType::Quantized => 16,
            PageType::GraphLevel0 => 17,
            PageType::GraphUpper => 18,
        }
    }
    /// From the on-disk code; reserved and unknown codes give `None`.
    pub fn from_code(c: u16) -> Option<PageType> {
        match c {
            1 => Some(PageType::Vector),
            2 => Some(PageType::Record),
            3 => Some(PageType::Tombstone),
            4 => Some(PageType::Directory),
            16 => Some(PageType::Quantized),
            17 => Some(PageType::GraphLevel0),
            18 => Some(PageType::GraphUpper),
            _ => None,
        }
    }
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            PageType::Vector => "vector",
            PageType::Record => "record",
            PageType::Tombstone => "tombstone",
            PageType::Directory => "directory",
            PageType::Quantized => "quantized",
            PageType::GraphLevel0 => "graph level 0",
            PageType::GraphUpper => "graph upper level",
        }
    }
}

/// A decoded page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PageHeader {
    pub page_type: PageType,
    pub page_no: u64,
    pub span: u32,
    pub count: u32,
    pub checkpoint_seq: u64,
    pub min_lsn: u64,
    pub max_lsn: u64,
    pub payload_len: u32,
    pub aux: u64,
}

impl PageHeader {
    fn write(&self, b: &mut [u8]) {
        use header::*;
        magic.put_bytes(b, &PAGE_MAGIC);
        page_type.put_u16(b, self.page_type.code());
        flags.put_u16(b, 0);
        page_no.put_u64(b, self.page_no);
        span.put_u32(b, self.span);
        count.put_u32(b, self.count);
        checkpoint_seq.put_u64(b, self.checkpoint_seq);
        min_lsn.put_u64(b, self.min_lsn);
        max_lsn.put_u64(b, self.max_lsn);
        payload_len.put_u32(b, self.payload_len);
        aux.put_u64(b, self.aux);
    }

    /// Decode the 64-byte header without checking the CRC (which needs the whole span).
    pub fn decode(b: &[u8]) -> Result<PageHeader, DecodeError> {
        use header::*;
        let b = b.get(..LEN).ok_or_else(|| DecodeError::new(b.len(), "page header is truncated"))?;
        if b[magic.range()] != PAGE_MAGIC {
            return Err(DecodeError::new(magic.offset, "bad page magic"));
        }
        let t = page_type.get_u16(b);
        let pt = PageType::from_code(t).ok_or_else(|| DecodeError::new(page_type.offset, format!("unknown page type {t}")))?;
        if flags.get_u16(b) != 0 {
            return Err(DecodeError::new(flags.offset, "unknown page flags"));
        }
        let sp = span.get_u32(b);
        if sp == 0 {
            return Err(DecodeError::new(span.offset, "page span is zero"));
        }
        Ok(PageHeader {
            page_type: pt,
            page_no: page_no.get_u64(b),
            span: sp,
            count: count.get_u32(b),
            checkpoint_seq: checkpoint_seq.get_u64(b),
            min_lsn: min_lsn.get_u64(b),
            max_lsn: max_lsn.get_u64(b),
            payload_len: payload_len.get_u32(b),
            aux: aux.get_u64(b),
        })
    }
}

fn page_crc(salt: u32, page: &[u8]) -> u32 {
    crate::crc32(salt, &[&page[..header::crc.offset], &page[HEADER_LEN..]])
}

/// Write `h` into the first 64 bytes of `page` (the whole span, body already filled) and seal it
/// with its CRC.
pub fn seal(page: &mut [u8], h: &PageHeader, salt: u32) {
    h.write(page);
    let c = page_crc(salt, page);
    header::crc.put_u32(page, c);
}

/// Decode the header of `page` (exactly the page's whole span) and verify its CRC, its page
/// number and its span.
pub fn verify(page: &[u8], salt: u32, expected_page_no: u64, page_size: usize) -> Result<PageHeader, DecodeError> {
    let h = PageHeader::decode(page)?;
    if h.page_no != expected_page_no {
        return Err(DecodeError::new(header::page_no.offset, format!("page says it is page {} but lies at page {expected_page_no}", h.page_no)));
    }
    if (h.span as usize).checked_mul(page_size) != Some(page.len()) {
        return Err(DecodeError::new(header::span.offset, "page span does not match its place in the directory"));
    }
    if page_crc(salt, page) != header::crc.get_u32(page) {
        return Err(DecodeError::new(header::crc.offset, "page checksum mismatch"));
    }
    if h.payload_len as usize > page.len() - HEADER_LEN {
        return Err(DecodeError::new(header::payload_len.offset, "payload length exceeds the page"));
    }
    Ok(h)
}

/// Write the slot array that starts every vector and quantized page body.
fn put_slots(p: &mut [u8], slots: &[u64]) {
    for (i, s) in slots.iter().enumerate() {
        let o = HEADER_LEN + 8 * i;
        p[o..o + 8].copy_from_slice(&s.to_le_bytes());
    }
}

/// Slot `i` of a vector or quantized page.
fn slot_at(page: &[u8], i: usize) -> u64 {
    let o = HEADER_LEN + 8 * i;
    let mut a = [0u8; 8];
    a.copy_from_slice(&page[o..o + 8]);
    u64::from_le_bytes(a)
}

/// The checks shared by vector and quantized pages: `count` in 1..=capacity, slots strictly
/// increasing. Returns the count.
fn check_slots(page: &[u8], h: &PageHeader, capacity: usize, what: &str) -> Result<usize, DecodeError> {
    let n = h.count as usize;
    if n == 0 || n > capacity {
        return Err(DecodeError::new(header::count.offset, format!("{what} page count {n} is outside 1..={capacity}")));
    }
    if HEADER_LEN + 8 * n > page.len() {
        return Err(DecodeError::new(header::count.offset, format!("{what} page count {n} exceeds the page")));
    }
    for i in 1..n {
        if slot_at(page, i) <= slot_at(page, i - 1) {
            return Err(DecodeError::new(HEADER_LEN + 8 * i, format!("{what} page slots are not increasing")));
        }
    }
    Ok(n)
}

/// Where things are in a vector page for a given dimension and page size (FORMAT.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorLayout {
    /// Elements per vector.
    pub dim: usize,
    /// Bytes per page.
    pub page_size: usize,
    /// Vectors per page.
    pub capacity: usize,
    /// Offset of the first vector (64-aligned).
    pub vec_offset: usize,
}

impl VectorLayout {
    /// The layout, or `None` if not even one vector fits a page.
    pub fn new(dim: usize, page_size: usize) -> Option<VectorLayout> {
        let stride = dim.checked_mul(4)?;
        let fits = |c: usize| align_up(HEADER_LEN + 8 * c, 64) + c * stride <= page_size;
        if !fits(1) {
            return None;
        }
        // Solve roughly, then correct for the alignment rounding.
        let mut c = (page_size - HEADER_LEN) / (8 + stride);
        while c > 1 && !fits(c) {
            c -= 1;
        }
        while fits(c + 1) {
            c += 1;
        }
        Some(VectorLayout { dim, page_size, capacity: c, vec_offset: align_up(HEADER_LEN + 8 * c, 64) })
    }

    #[allow(clippy::too_many_arguments, reason = "one argument per header field")]
    /// Build a sealed vector page holding `slots` and `vectors` (`slots.len() * dim` floats).
    pub fn encode(&self, page_no: u64, checkpoint_seq: u64, min_lsn: u64, max_lsn: u64, slots: &[u64], vectors: &[f32], salt: u32) -> Vec<u8> {
        let mut p = vec![0u8; self.page_size];
        self.encode_into(&mut p, page_no, checkpoint_seq, min_lsn, max_lsn, slots, vectors, salt);
        p
    }

    /// [`Self::encode`] into `p`, which must be `page_size` zero bytes.
    #[allow(clippy::too_many_arguments, reason = "one argument per header field")]
    pub fn encode_into(&self, p: &mut [u8], page_no: u64, checkpoint_seq: u64, min_lsn: u64, max_lsn: u64, slots: &[u64], vectors: &[f32], salt: u32) {
        assert!(slots.len() <= self.capacity && vectors.len() == slots.len() * self.dim && p.len() == self.page_size);
        put_slots(p, slots);
        let vb: &[u8] = bytemuck::cast_slice(vectors);
        p[self.vec_offset..self.vec_offset + vb.len()].copy_from_slice(vb);
        let h = PageHeader {
            page_type: PageType::Vector,
            page_no,
            span: 1,
            count: slots.len() as u32,
            checkpoint_seq,
            min_lsn,
            max_lsn,
            payload_len: (self.vec_offset + vb.len() - HEADER_LEN) as u32,
            aux: 0,
        };
        seal(p, &h, salt);
    }

    /// Check a verified vector page's body: count within capacity, slots strictly increasing.
    pub fn check(&self, page: &[u8], h: &PageHeader) -> Result<(), DecodeError> {
        check_slots(page, h, self.capacity, "vector").map(|_| ())
    }

    /// Slot of vector `i` of a page.
    pub fn slot(&self, page: &[u8], i: usize) -> u64 {
        slot_at(page, i)
    }

    /// The raw bytes of the first `count` vectors of a page.
    pub fn vector_bytes<'a>(&self, page: &'a [u8], count: usize) -> &'a [u8] {
        &page[self.vec_offset..self.vec_offset + count * self.dim * 4]
    }

    /// The first `count` vectors as floats, without copying when `page` is 4-byte aligned
    /// (always so for a mapped file), else `None`.
    pub fn vectors<'a>(&self, page: &'a [u8], count: usize) -> Option<&'a [f32]> {
        bytemuck::try_cast_slice(self.vector_bytes(page, count)).ok()
    }
}

/// The parameters of one quantized vector, as stored (FORMAT.md §2.8): `v_i ≈ scale × code_i`.
#[derive(Debug, Clone, Copy, PartialEq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct QuantEntry {
    /// `max |v_i| / 127`.
    pub scale: f32,
    /// Σ code_i.
    pub code_sum: i32,
    /// Σ v_i² of the float32 vector.
    pub sq_norm: f32,
    /// Zero.
    pub reserved: u32,
}

const _: () = assert!(std::mem::size_of::<QuantEntry>() == quant_params::LEN);
const _: () = assert!(quant_params::scale.offset == 0 && quant_params::code_sum.offset == 4 && quant_params::sq_norm.offset == 8);

/// Quantize `v` into `codes` (same length) as FORMAT.md §2.8 defines, returning its parameters.
///
/// Written to vectorise on baseline x86-64 (it runs for every vector written): no libm
/// `round` call per element (see the loop), and the maximum and the norm in eight lanes.
pub fn quantize(v: &[f32], codes: &mut [i8]) -> QuantEntry {
    assert_eq!(v.len(), codes.len());
    // max |v_i|, in eight lanes so that it vectorises (the maximum does not depend on order).
    let mut lanes = [0f32; 8];
    let (chunks, rest) = v.as_chunks::<8>();
    for ch in chunks {
        for i in 0..8 {
            let a = ch[i].abs();
            lanes[i] = if a > lanes[i] { a } else { lanes[i] };
        }
    }
    let m = lanes.iter().chain(rest).fold(0f32, |m, &x| if x.abs() > m { x.abs() } else { m });
    let scale = m / 127.0;
    let mut code_sum = 0i32;
    if scale > 0.0 && scale.is_finite() {
        for (c, &x) in codes.iter_mut().zip(v) {
            // |y| ≤ 128 after the clamp, so `t` (truncated toward zero) and `y − t` are exact,
            // and stepping away from zero when |y − t| ≥ ½ rounds halves away from zero.
            let y = (x / scale).clamp(-128.0, 128.0);
            let t = y as i32;
            let f = y - t as f32;
            let r = t + i32::from(f >= 0.5) - i32::from(f <= -0.5);
            *c = r.clamp(-127, 127) as i8;
        }
        code_sum = codes.iter().map(|&c| i32::from(c)).sum();
    } else {
        codes.fill(0);
    }
    // Eight interleaved partial sums, added in order at the end.
    let mut acc = [0f32; 8];
    for ch in chunks {
        for i in 0..8 {
            acc[i] += ch[i] * ch[i];
        }
    }
    let sq_norm = acc.iter().sum::<f32>() + rest.iter().map(|x| x * x).sum::<f32>();
    QuantEntry { scale: if scale.is_finite() { scale } else { 0.0 }, code_sum, sq_norm, reserved: 0 }
}

/// Where things are in a quantized page for a given dimension and page size (FORMAT.md §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantLayout {
    /// Elements (bytes) per vector.
    pub dim: usize,
    /// Bytes per page.
    pub page_size: usize,
    /// Vectors per page.
    pub capacity: usize,
    /// Offset of the parameter array.
    pub params_offset: usize,
    /// Offset of the first code vector (64-aligned).
    pub codes_offset: usize,
}

/// The sum of a vector's int8 codes and the lowest of them, in one pass the compiler
/// vectorises: sums of 256 codes fit an `i16` (256 × -128 is its minimum), so the inner loop
/// runs in 16-bit lanes. This check runs on every quantized page the first time a process
/// reads it, so a reader's first search pays it for the whole store (issue 16: it was twice
/// the scan itself with an `i64` sum and a separate pass for -128).
fn sum_and_min(codes: &[u8]) -> (i64, i8) {
    let (mut total, mut lowest) = (0i64, 0i8);
    for chunk in codes.chunks(256) {
        let (mut sum, mut low) = (0i16, 0i8);
        for &c in chunk {
            let v = c as i8;
            sum = sum.wrapping_add(i16::from(v));
            low = low.min(v);
        }
        total += i64::from(sum);
        lowest = lowest.min(low);
    }
    (total, lowest)
}

impl QuantLayout {
    /// The layout, or `None` if not even one vector fits a page.
    pub fn new(dim: usize, page_size: usize) -> Option<QuantLayout> {
        let per = 8 + quant_params::LEN;
        let fits = |c: usize| align_up(HEADER_LEN + per * c, 64) + c * dim <= page_size;
        if dim == 0 || !fits(1) {
            return None;
        }
        let mut c = (page_size - HEADER_LEN) / (per + dim);
        while c > 1 && !fits(c) {
            c -= 1;
        }
        while fits(c + 1) {
            c += 1;
        }
        Some(QuantLayout { dim, page_size, capacity: c, params_offset: HEADER_LEN + 8 * c, codes_offset: align_up(HEADER_LEN + per * c, 64) })
    }

    /// Build a sealed quantized page into `p` (`page_size` zero bytes) holding `slots`, their
    /// `params` and their `codes` (`slots.len() * dim` bytes).
    #[allow(clippy::too_many_arguments, reason = "one argument per header field")]
    pub fn encode_into(
        &self,
        p: &mut [u8],
        page_no: u64,
        checkpoint_seq: u64,
        min_lsn: u64,
        max_lsn: u64,
        slots: &[u64],
        params: &[QuantEntry],
        codes: &[i8],
        salt: u32,
    ) {
        let n = slots.len();
        assert!(n <= self.capacity && params.len() == n && codes.len() == n * self.dim && p.len() == self.page_size);
        put_slots(p, slots);
        for (i, e) in params.iter().enumerate() {
            let o = self.params_offset + quant_params::LEN * i;
            quant_params::scale.put_u32(&mut p[o..], e.scale.to_bits());
            quant_params::code_sum.put_u32(&mut p[o..], e.code_sum as u32);
            quant_params::sq_norm.put_u32(&mut p[o..], e.sq_norm.to_bits());
        }
        let cb: &[u8] = bytemuck::cast_slice(codes);
        p[self.codes_offset..self.codes_offset + cb.len()].copy_from_slice(cb);
        let h = PageHeader {
            page_type: PageType::Quantized,
            page_no,
            span: 1,
            count: n as u32,
            checkpoint_seq,
            min_lsn,
            max_lsn,
            payload_len: (self.codes_offset + cb.len() - HEADER_LEN) as u32,
            aux: 0,
        };
        seal(p, &h, salt);
    }

    /// Check a verified quantized page's body: count within capacity, slots strictly
    /// increasing, every scale finite and non-negative, every `code_sum` the sum of its codes,
    /// reserved fields zero.
    pub fn check(&self, page: &[u8], h: &PageHeader) -> Result<(), DecodeError> {
        if page.len() != self.page_size {
            return Err(DecodeError::new(header::span.offset, "a quantized page spans one page"));
        }
        let n = check_slots(page, h, self.capacity, "quantized")?;
        for i in 0..n {
            let at = self.params_offset + quant_params::LEN * i;
            let e = &page[at..at + quant_params::LEN];
            let scale = f32::from_bits(quant_params::scale.get_u32(e));
            let norm = f32::from_bits(quant_params::sq_norm.get_u32(e));
            if !(scale.is_finite() && scale >= 0.0 && norm.is_finite()) {
                return Err(DecodeError::new(at, "quantized vector has a scale or norm that is not a finite non-negative number"));
            }
            if quant_params::reserved.get_u32(e) != 0 {
                return Err(DecodeError::new(at + quant_params::reserved.offset, "reserved bytes are not zero"));
            }
            let codes = &page[self.codes_offset + i * self.dim..self.codes_offset + (i + 1) * self.dim];
            let (sum, lowest) = sum_and_min(codes);
            if lowest == i8::MIN || sum != i64::from(quant_params::code_sum.get_u32(e) as i32) {
                return Err(DecodeError::new(at + quant_params::code_sum.offset, "quantized codes do not match their sum or lie outside -127..=127"));
            }
        }
        Ok(())
    }

    /// Slot of entry `i`.
    pub fn slot(&self, page: &[u8], i: usize) -> u64 {
        slot_at(page, i)
    }

    /// The first `count` parameter entries, without copying when `page` is 4-byte aligned
    /// (always so for a mapped file), else `None`.
    pub fn params<'a>(&self, page: &'a [u8], count: usize) -> Option<&'a [QuantEntry]> {
        bytemuck::try_cast_slice(&page[self.params_offset..self.params_offset + count * quant_params::LEN]).ok()
    }

    /// The first `count` parameter entries, decoded (for unaligned buffers).
    pub fn params_owned(&self, page: &[u8], count: usize) -> Vec<QuantEntry> {
        (0..count).map(|i| self.param(page, i)).collect()
    }

    /// Where entry `i` lies in a page: the byte ranges of its codes, its parameters and its
    /// slot (for a reader that reads them in place, or asks the cache for them).
    pub fn entry_ranges(&self, i: usize) -> [std::ops::Range<usize>; 3] {
        let (code, param, slot) = (self.codes_offset + i * self.dim, self.params_offset + quant_params::LEN * i, HEADER_LEN + 8 * i);
        [code..code + self.dim, param..param + quant_params::LEN, slot..slot + 8]
    }

    /// Parameter entry `i`, decoded (any alignment).
    pub fn param(&self, page: &[u8], i: usize) -> QuantEntry {
        let [_, params, _] = self.entry_ranges(i);
        let e = &page[params];
        QuantEntry {
            scale: f32::from_bits(quant_params::scale.get_u32(e)),
            code_sum: quant_params::code_sum.get_u32(e) as i32,
            sq_norm: f32::from_bits(quant_params::sq_norm.get_u32(e)),
            reserved: 0,
        }
    }

    /// The codes of entry `i`.
    pub fn code<'a>(&self, page: &'a [u8], i: usize) -> &'a [i8] {
        let [codes, _, _] = self.entry_ranges(i);
        bytemuck::cast_slice(&page[codes])
    }

    /// The codes of the first `count` vectors.
    pub fn codes<'a>(&self, page: &'a [u8], count: usize) -> &'a [i8] {
        bytemuck::cast_slice(&page[self.codes_offset..self.codes_offset + count * self.dim])
    }
}

/// A record page entry (FORMAT.md §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEntry<'a> {
    /// A new live record.
    Put {
        /// Its slot.
        slot: u64,
        /// LSN that wrote it.
        lsn: u64,
        /// The id.
        id: &'a str,
        /// The document text.
        text: Option<&'a str>,
        /// Metadata, a JSON object.
        metadata: Option<&'a str>,
    },
    /// Text and/or metadata of a slot changed. `None`: unchanged; `Some(None)`: set to null.
    Update {
        /// Its slot.
        slot: u64,
        /// LSN that wrote it.
        lsn: u64,
        /// New text.
        text: Option<Option<&'a str>>,
        /// New metadata.
        metadata: Option<Option<&'a str>>,
    },
}

/// Record entry kind codes.
pub const KIND_PUT: u8 = 1;
/// Record entry kind codes.
pub const KIND_UPDATE: u8 = 2;

/// Encode the flags of an update's two field changes (shared with the WAL's update record).
pub fn update_flags(text: Option<Option<&str>>, metadata: Option<Option<&str>>) -> u8 {
    let mut f = 0;
    match text {
        None => {}
        Some(None) => f |= 1 | 4,
        Some(Some(_)) => f |= 1,
    }
    match metadata {
        None => {}
        Some(None) => f |= 2 | 8,
        Some(Some(_)) => f |= 2,
    }
    f
}

/// Decode an update's field change from its flags and bytes.
pub fn update_field<'a>(flags: u8, set_bit: u8, null_bit: u8, bytes: &'a [u8], at: usize, what: &str) -> Result<Option<Option<&'a str>>, DecodeError> {
    if flags & set_bit == 0 {
        if flags & null_bit != 0 || !bytes.is_empty() {
            return Err(DecodeError::new(at, format!("update {what} flags are inconsistent")));
        }
        return Ok(None);
    }
    if flags & null_bit != 0 {
        if !bytes.is_empty() {
            return Err(DecodeError::new(at, format!("update sets {what} to null but carries bytes")));
        }
        return Ok(Some(None));
    }
    Ok(Some(Some(utf8(bytes, at, what)?)))
}

impl<'a> RecordEntry<'a> {
    /// Slot of the entry.
    pub fn slot(&self) -> u64 {
        match self {
            RecordEntry::Put { slot, .. } | RecordEntry::Update { slot, .. } => *slot,
        }
    }
    /// LSN of the entry.
    pub fn lsn(&self) -> u64 {
        match self {
            RecordEntry::Put { lsn, .. } | RecordEntry::Update { lsn, .. } => *lsn,
        }
    }
    fn parts(&self) -> (u8, u8, &'a str, &'a str, &'a str) {
        match *self {
            RecordEntry::Put { id, text, metadata, .. } => {
                let f = u8::from(text.is_some()) | (u8::from(metadata.is_some()) << 1);
                (KIND_PUT, f, id, text.unwrap_or(""), metadata.unwrap_or(""))
            }
            RecordEntry::Update { text, metadata, .. } => {
                (KIND_UPDATE, update_flags(text, metadata), "", text.flatten().unwrap_or(""), metadata.flatten().unwrap_or(""))
            }
        }
    }
    /// Encoded size, padding included.
    pub fn encoded_len(&self) -> usize {
        let (_, _, id, t, m) = self.parts();
        align_up(record_entry::LEN + id.len() + t.len() + m.len(), 8)
    }
    /// Append the encoded entry (padded to 8) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use record_entry::*;
        let (k, f, id, t, m) = self.parts();
        let start = out.len();
        out.resize(start + LEN, 0);
        let b = &mut out[start..];
        kind.put_u8(b, k);
        flags.put_u8(b, f);
        id_len.put_u16(b, id.len() as u16);
        text_len.put_u32(b, t.len() as u32);
        meta_len.put_u32(b, m.len() as u32);
        slot.put_u64(b, self.slot());
        lsn.put_u64(b, self.lsn());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(m.as_bytes());
        out.resize(start + self.encoded_len(), 0);
    }
    /// Decode the entry at `at` in `body`; returns it and the offset of the next entry.
    pub fn decode(body: &'a [u8], at: usize) -> Result<(RecordEntry<'a>, usize), DecodeError> {
        use record_entry::*;
        let fixed = take(body, at, LEN, "record entry")?;
        let k = kind.get_u8(fixed);
        let f = flags.get_u8(fixed);
        let il = id_len.get_u16(fixed) as usize;
        let tl = text_len.get_u32(fixed) as usize;
        let ml = meta_len.get_u32(fixed) as usize;
        let s = slot.get_u64(fixed);
        let l = lsn.get_u64(fixed);
        let mut p = at + LEN;
        let idb = take(body, p, il, "record id")?;
        p += il;
        let tb = take(body, p, tl, "record text")?;
        p += tl;
        let mb = take(body, p, ml, "record metadata")?;
        p += ml;
        let next = align_up(p, 8);
        let e = match k {
            KIND_PUT => {
                if f & !3 != 0 || il == 0 || (f & 1 == 0 && tl != 0) || (f & 2 == 0 && ml != 0) {
                    return Err(DecodeError::new(at, "record put entry flags are inconsistent"));
                }
                RecordEntry::Put {
                    slot: s,
                    lsn: l,
                    id: utf8(idb, at + LEN, "record id")?,
                    text: if f & 1 != 0 { Some(utf8(tb, at + LEN + il, "record text")?) } else { None },
                    metadata: if f & 2 != 0 { Some(utf8(mb, at + LEN + il + tl, "record metadata")?) } else { None },
                }
            }
            KIND_UPDATE => {
                if f & !15 != 0 || il != 0 {
                    return Err(DecodeError::new(at, "record update entry flags are inconsistent"));
                }
                RecordEntry::Update {
                    slot: s,
                    lsn: l,
                    text: update_field(f, 1, 4, tb, at + LEN, "text")?,
                    metadata: update_field(f, 2, 8, mb, at + LEN + tl, "metadata")?,
                }
            }
            _ => return Err(DecodeError::new(at, format!("unknown record entry kind {k}"))),
        };
        Ok((e, next))
    }
}

/// Decode all `count` entries of a verified record page.
pub fn record_entries<'a>(page: &'a [u8], h: &PageHeader) -> Result<Vec<RecordEntry<'a>>, DecodeError> {
    let end = HEADER_LEN + h.payload_len as usize;
    let body = page.get(..end).ok_or_else(|| DecodeError::new(header::payload_len.offset, "payload length exceeds the page"))?;
    let mut at = HEADER_LEN;
    // The count comes from the file: reserve no more entries than the payload can hold, or a
    // page with a valid checksum and a huge count would abort the process on allocation.
    let fit = (end - HEADER_LEN) / record_entry::LEN;
    let mut out = Vec::with_capacity((h.count as usize).min(fit));
    for _ in 0..h.count {
        let (e, next) = RecordEntry::decode(body, at)?;
        out.push(e);
        at = next;
    }
    if at != end {
        return Err(DecodeError::new(at, "record page payload length does not match its entries"));
    }
    Ok(out)
}

/// Packs record entries into pages of `page_size`, a large entry getting a spanning page of
/// its own. Returns each page's body (entries only) and its entry count and LSN range.
pub struct RecordPacker {
    page_size: usize,
    /// Finished page bodies: (bytes after the header, count, min_lsn, max_lsn).
    pub done: Vec<(Vec<u8>, u32, u64, u64)>,
    cur: Vec<u8>,
    cur_count: u32,
    cur_min: u64,
    cur_max: u64,
}

impl RecordPacker {
    /// A packer for pages of `page_size` bytes.
    pub fn new(page_size: usize) -> Self {
        RecordPacker { page_size, done: Vec::new(), cur: Vec::new(), cur_count: 0, cur_min: 0, cur_max: 0 }
    }
    /// Add one entry.
    pub fn push(&mut self, e: &RecordEntry<'_>) {
        let need = e.encoded_len();
        if self.cur_count > 0 && HEADER_LEN + self.cur.len() + need > self.page_size {
            self.flush();
        }
        if self.cur_count == 0 {
            self.cur_min = e.lsn();
        }
        e.encode_into(&mut self.cur);
        self.cur_count += 1;
        self.cur_max = e.lsn();
        if HEADER_LEN + self.cur.len() >= self.page_size {
            self.flush();
        }
    }
    /// Close the current page.
    pub fn flush(&mut self) {
        if self.cur_count > 0 {
            self.done.push((std::mem::take(&mut self.cur), self.cur_count, self.cur_min, self.cur_max));
            self.cur_count = 0;
        }
    }
}

/// Build a sealed page of any non-vector type from its body; its span is the fewest page units
/// that hold header and body.
#[allow(clippy::too_many_arguments)]
pub fn encode_page(
    page_type: PageType,
    page_no: u64,
    checkpoint_seq: u64,
    count: u32,
    min_lsn: u64,
    max_lsn: u64,
    aux: u64,
    body: &[u8],
    page_size: usize,
    salt: u32,
) -> Vec<u8> {
    let span = (HEADER_LEN + body.len()).div_ceil(page_size).max(1);
    let mut p = vec![0u8; span * page_size];
    p[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
    let h = PageHeader { page_type, page_no, span: span as u32, count, checkpoint_seq, min_lsn, max_lsn, payload_len: body.len() as u32, aux };
    seal(&mut p, &h, salt);
    p
}

/// Encode a tombstone entry.
pub fn encode_tombstone(out: &mut Vec<u8>, slot: u64, lsn: u64) {
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
}

/// Decode the entries of a verified tombstone page as (slot, lsn).
pub fn tombstones(page: &[u8], h: &PageHeader) -> Result<Vec<(u64, u64)>, DecodeError> {
    let n = h.count as usize;
    let len = n.checked_mul(tombstone_entry::LEN).filter(|&l| l == h.payload_len as usize);
    let len = len.ok_or_else(|| DecodeError::new(header::count.offset, "tombstone count does not match the payload length"))?;
    let body = take(page, HEADER_LEN, len, "tombstone entries")?;
    Ok(body.chunks_exact(tombstone_entry::LEN).map(|c| (tombstone_entry::slot.get_u64(c), tombstone_entry::lsn.get_u64(c))).collect())
}

/// A directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry {
    /// First page unit.
    pub page_no: u64,
    /// Vector pages: slot of the first vector.
    pub first_slot: u64,
    /// Page units.
    pub span: u32,
    /// Page type.
    pub page_type: PageType,
}

impl DirEntry {
    /// Append the encoded entry.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use dir_entry::*;
        let s = out.len();
        out.resize(s + LEN, 0);
        let b = &mut out[s..];
        page_no.put_u64(b, self.page_no);
        first_slot.put_u64(b, self.first_slot);
        span.put_u32(b, self.span);
        page_type.put_u16(b, self.page_type.code());
    }
}

/// Decode and check the entries of a verified directory page: `aux` vector entries first, in
/// strictly increasing `first_slot`, then the others; every page inside `1..page_count` and not
/// overlapping the directory's own pages.
pub fn directory(page: &[u8], h: &PageHeader, page_count: u64) -> Result<Vec<DirEntry>, DecodeError> {
    use dir_entry::*;
    let n = h.count as usize;
    let len = n.checked_mul(LEN).filter(|&l| l == h.payload_len as usize);
    let len = len.ok_or_else(|| DecodeError::new(header::count.offset, "directory count does not match the payload length"))?;
    let body = take(page, HEADER_LEN, len, "directory entries")?;
    let nv =
        usize::try_from(h.aux).ok().filter(|&v| v <= n).ok_or_else(|| DecodeError::new(header::aux.offset, "directory vector count exceeds its entries"))?;
    let mut out = Vec::with_capacity(n);
    let mut last_quant: Option<u64> = None;
    for (i, c) in body.chunks_exact(LEN).enumerate() {
        let at = HEADER_LEN + i * LEN;
        let t = page_type.get_u16(c);
        let pt =
            PageType::from_code(t).filter(|&p| p != PageType::Directory).ok_or_else(|| DecodeError::new(at, format!("directory entry has page type {t}")))?;
        let e = DirEntry { page_no: page_no.get_u64(c), first_slot: first_slot.get_u64(c), span: span.get_u32(c), page_type: pt };
        if (pt == PageType::Vector) != (i < nv) {
            return Err(DecodeError::new(at, "directory entries are not grouped as its header says"));
        }
        let end = e.page_no.checked_add(u64::from(e.span));
        if e.page_no == 0
            || e.span == 0
            || end.is_none_or(|x| x > page_count)
            || (e.page_no < h.page_no + u64::from(h.span) && end.is_some_and(|x| x > h.page_no))
        {
            return Err(DecodeError::new(at, "directory entry points outside the file"));
        }
        if pt == PageType::Vector && (e.span != 1 || out.last().is_some_and(|p: &DirEntry| p.first_slot >= e.first_slot)) {
            return Err(DecodeError::new(at, "vector pages in the directory are not in slot order"));
        }
        if pt == PageType::Quantized {
            if e.span != 1 || last_quant.is_some_and(|s| s >= e.first_slot) {
                return Err(DecodeError::new(at, "quantized pages in the directory are not in slot order"));
            }
            last_quant = Some(e.first_slot);
        }
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by the `page` fuzz target: `record_entries` reserved `count` entries before
    /// decoding any, so a sealed page whose header claimed 4 billion entries aborted the process
    /// (allocation failure) instead of returning an error.
    #[test]
    fn record_page_with_a_huge_count_is_an_error_not_an_abort() {
        let mut body = Vec::new();
        RecordEntry::Put { slot: 1, lsn: 2, id: "a", text: None, metadata: None }.encode_into(&mut body);
        let p = encode_page(PageType::Record, 3, 1, u32::MAX, 2, 2, 0, &body, 8192, 9);
        let h = verify(&p, 9, 3, 8192).expect("a sealed page verifies");
        assert_eq!(h.count, u32::MAX);
        assert!(record_entries(&p, &h).is_err());
    }

    #[test]
    fn vector_layout_for_minilm() {
        let l = VectorLayout::new(384, 65536).expect("fits");
        assert_eq!(l.capacity, 42);
        assert_eq!(l.vec_offset % 64, 0);
        assert!(l.vec_offset + 42 * 1536 <= 65536);
        assert!(VectorLayout::new(4096, 8192).is_none());
        for ps in [8192usize, 65536] {
            for dim in 1..=2000 {
                let Some(l) = VectorLayout::new(dim, ps) else { continue };
                let used = |c: usize| align_up(HEADER_LEN + 8 * c, 64) + c * dim * 4;
                assert!(used(l.capacity) <= ps && used(l.capacity + 1) > ps, "dim {dim} page {ps}");
            }
        }
    }

    #[test]
    fn quant_layout_for_minilm() {
        let l = QuantLayout::new(384, 65536).expect("fits");
        assert_eq!(l.capacity, 160);
        assert_eq!(l.codes_offset % 64, 0);
        assert!(QuantLayout::new(9000, 8192).is_none() && QuantLayout::new(0, 8192).is_none());
        for ps in [8192usize, 65536] {
            for dim in 1..=3000 {
                let Some(l) = QuantLayout::new(dim, ps) else { continue };
                let used = |c: usize| align_up(HEADER_LEN + 24 * c, 64) + c * dim;
                assert!(used(l.capacity) <= ps && used(l.capacity + 1) > ps, "dim {dim} page {ps}");
                assert!(l.params_offset + 16 * l.capacity <= l.codes_offset);
            }
        }
    }

    fn quant_page(l: &QuantLayout, n: usize, salt: u32) -> (Vec<u8>, Vec<u64>, Vec<QuantEntry>, Vec<i8>) {
        let slots: Vec<u64> = (0..n as u64).map(|i| 100 + i * 2).collect();
        let codes: Vec<i8> = (0..n * l.dim).map(|i| ((i * 37) % 255) as i8).map(|c| if c == i8::MIN { 0 } else { c }).collect();
        let params: Vec<QuantEntry> = codes
            .chunks_exact(l.dim)
            .enumerate()
            .map(|(i, c)| QuantEntry { scale: i as f32 * 0.01, code_sum: c.iter().map(|&x| i32::from(x)).sum(), sq_norm: 1.0, reserved: 0 })
            .collect();
        let mut p = vec![0u8; l.page_size];
        l.encode_into(&mut p, 5, 1, 3, 9, &slots, &params, &codes, salt);
        (p, slots, params, codes)
    }

    #[test]
    fn quant_page_check_refuses_inconsistent_bodies() {
        let l = QuantLayout::new(24, 8192).expect("fits");
        let (p, ..) = quant_page(&l, 5, 1);
        let h = verify(&p, 1, 5, 8192).expect("verifies");
        l.check(&p, &h).expect("checks");
        // Each of these breaks the body and reseals it, so only `check` can notice.
        let reseal = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut q = p.clone();
            f(&mut q);
            seal(&mut q, &h, 1);
            let h = verify(&q, 1, 5, 8192).expect("verifies");
            l.check(&q, &h)
        };
        assert!(reseal(&|q| q[l.codes_offset] = q[l.codes_offset].wrapping_add(1)).is_err(), "code sum");
        assert!(reseal(&|q| q[l.codes_offset..l.codes_offset + 2].copy_from_slice(&[0x80, 0x7f])).is_err(), "-128 code");
        assert!(reseal(&|q| q[l.params_offset..l.params_offset + 4].copy_from_slice(&f32::NAN.to_le_bytes())).is_err(), "NaN scale");
        assert!(reseal(&|q| q[l.params_offset..l.params_offset + 4].copy_from_slice(&(-1.0f32).to_le_bytes())).is_err(), "negative scale");
        assert!(reseal(&|q| q[l.params_offset + 12] = 1).is_err(), "reserved");
        assert!(reseal(&|q| q[HEADER_LEN + 8..HEADER_LEN + 16].copy_from_slice(&0u64.to_le_bytes())).is_err(), "slot order");
    }

    #[test]
    fn quantize_follows_the_spec() {
        let mut c = [0i8; 5];
        let e = quantize(&[0.5, -1.27, 0.005, 0.0049, 1.27], &mut c);
        assert!((e.scale - 0.01).abs() < 1e-7);
        assert_eq!(c, [50, -127, 1, 0, 127]);
        assert_eq!(e.code_sum, 51);
        assert!((e.sq_norm - (0.25 + 2.0 * 1.27 * 1.27 + 0.005 * 0.005 + 0.0049 * 0.0049)).abs() < 1e-5);
        let z = quantize(&[0.0; 5], &mut c);
        assert_eq!((z.scale, z.code_sum, c), (0.0, 0, [0; 5]));
    }

    proptest! {
        #[test]
        fn the_one_pass_code_check_agrees_with_the_plain_one(codes in proptest::collection::vec(any::<u8>(), 0..2000), fill in proptest::option::of(any::<u8>())) {
            // Long runs of one code (all -128, all 127) are the sums' extremes.
            let codes = match fill { Some(f) => vec![f; codes.len()], None => codes };
            let (sum, lowest) = sum_and_min(&codes);
            prop_assert_eq!(sum, codes.iter().map(|&c| i64::from(c as i8)).sum::<i64>());
            prop_assert_eq!(lowest == i8::MIN, codes.contains(&0x80));
        }

        #[test]
        fn quantized_values_are_within_half_a_step(v in proptest::collection::vec(-1e6f32..1e6, 1..100)) {
            let mut c = vec![0i8; v.len()];
            let e = quantize(&v, &mut c);
            prop_assert_eq!(e.code_sum, c.iter().map(|&x| i32::from(x)).sum::<i32>());
            for (x, q) in v.iter().zip(&c) {
                prop_assert!(*q != i8::MIN);
                prop_assert_eq!(i32::from(*q), ((x / e.scale).round() as i32).clamp(-127, 127), "round half away from zero");
                prop_assert!((x - e.scale * f32::from(*q)).abs() <= e.scale * 0.5001 + 1e-30);
            }
        }

        #[test]
        fn quant_page_round_trip(dim in 1usize..80, n in 1usize..40, salt in any::<u32>()) {
            let l = QuantLayout::new(dim, 8192).expect("fits");
            let n = n.min(l.capacity);
            let (p, slots, params, codes) = quant_page(&l, n, salt);
            let h = verify(&p, salt, 5, 8192).expect("verifies");
            prop_assert_eq!(h.page_type, PageType::Quantized);
            l.check(&p, &h).expect("body checks");
            for (i, s) in slots.iter().enumerate() { prop_assert_eq!(l.slot(&p, i), *s); }
            prop_assert_eq!(l.params_owned(&p, n), params.clone());
            if let Some(direct) = l.params(&p, n) { prop_assert_eq!(direct, &params[..]); }
            prop_assert_eq!(l.codes(&p, n), &codes[..]);
        }

        #[test]
        fn quant_check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 8192), count in 0u32..400) {
            let l = QuantLayout::new(16, 8192).expect("fits");
            let mut p = bytes;
            let h = PageHeader { page_type: PageType::Quantized, page_no: 1, span: 1, count, checkpoint_seq: 1, min_lsn: 0, max_lsn: 0, payload_len: 0, aux: 0 };
            seal(&mut p, &h, 0);
            let h = verify(&p, 0, 1, 8192).expect("sealed");
            let _ = l.check(&p, &h);
        }

        #[test]
        fn vector_page_round_trip(dim in 1usize..64, n in 1usize..20, salt in any::<u32>(), seed in any::<u64>()) {
            let l = VectorLayout::new(dim, 8192).expect("fits");
            let n = n.min(l.capacity);
            let slots: Vec<u64> = (0..n as u64).map(|i| seed / 2 + i * 3).collect();
            let vecs: Vec<f32> = (0..n * dim).map(|i| (i as f32) * 0.5 - 3.0).collect();
            let p = l.encode(7, 2, 10, 20, &slots, &vecs, salt);
            let h = verify(&p, salt, 7, 8192).expect("verifies");
            prop_assert_eq!(h.count as usize, n);
            l.check(&p, &h).expect("body checks");
            for (i, s) in slots.iter().enumerate() { prop_assert_eq!(l.slot(&p, i), *s); }
            let got: Vec<f32> = l.vector_bytes(&p, n).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            prop_assert_eq!(got, vecs);
            prop_assert!(verify(&p, salt ^ 1, 7, 8192).is_err());
            prop_assert!(verify(&p, salt, 8, 8192).is_err());
        }

        #[test]
        fn record_entries_round_trip(entries in proptest::collection::vec(
            (any::<u64>(), any::<u64>(), "[a-z]{1,12}", proptest::option::of(".{0,40}"), proptest::option::of("\\{\"k\":[0-9]{1,3}\\}"), any::<bool>(), any::<u8>()), 1..30))
        {
            let es: Vec<RecordEntry<'_>> = entries.iter().map(|(s, l, id, t, m, put, f)| if *put {
                RecordEntry::Put { slot: *s, lsn: *l, id, text: t.as_deref(), metadata: m.as_deref() }
            } else {
                let tc = match f % 3 { 0 => None, 1 => Some(None), _ => Some(t.as_deref().or(Some(""))) };
                let mc = match (f / 3) % 3 { 0 => None, 1 => Some(None), _ => Some(m.as_deref().or(Some("{}"))) };
                RecordEntry::Update { slot: *s, lsn: *l, text: tc, metadata: mc }
            }).collect();
            let mut packer = RecordPacker::new(8192);
            for e in &es { packer.push(e); }
            packer.flush();
            let mut decoded = Vec::new();
            for (i, (body, count, lo, hi)) in packer.done.iter().enumerate() {
                let p = encode_page(PageType::Record, 3 + i as u64, 1, *count, *lo, *hi, 0, body, 8192, 9);
                let h = verify(&p, 9, 3 + i as u64, 8192).expect("verifies");
                let got = record_entries(&p, &h).expect("decodes");
                decoded.extend(got.into_iter().map(|e| format!("{e:?}")));
            }
            let want: Vec<String> = es.iter().map(|e| format!("{e:?}")).collect();
            prop_assert_eq!(decoded, want);
        }

        #[test]
        fn garbage_pages_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300), salt in any::<u32>()) {
            if let Ok(h) = PageHeader::decode(&b) {
                let _ = record_entries(&b, &h);
                let _ = tombstones(&b, &h);
                let _ = directory(&b, &h, 100);
            }
            let _ = verify(&b, salt, 0, 64);
            let _ = RecordEntry::decode(&b, 0);
        }
    }

    #[test]
    fn big_record_gets_a_spanning_page() {
        let text = "x".repeat(20_000);
        let e = RecordEntry::Put { slot: 1, lsn: 2, id: "a", text: Some(&text), metadata: None };
        let mut packer = RecordPacker::new(8192);
        packer.push(&e);
        packer.flush();
        assert_eq!(packer.done.len(), 1);
        let (body, c, lo, hi) = &packer.done[0];
        let p = encode_page(PageType::Record, 4, 1, *c, *lo, *hi, 0, body, 8192, 1);
        assert_eq!(p.len(), 3 * 8192);
        let h = verify(&p, 1, 4, 8192).expect("verifies");
        assert_eq!(record_entries(&p, &h).expect("decodes"), vec![e]);
    }

    #[test]
    fn directory_round_trip_and_checks() {
        let es = [
            DirEntry { page_no: 1, first_slot: 0, span: 1, page_type: PageType::Vector },
            DirEntry { page_no: 2, first_slot: 42, span: 1, page_type: PageType::Vector },
            DirEntry { page_no: 3, first_slot: 0, span: 2, page_type: PageType::Record },
            DirEntry { page_no: 5, first_slot: 0, span: 1, page_type: PageType::Tombstone },
        ];
        let mut body = Vec::new();
        for e in &es {
            e.encode_into(&mut body);
        }
        let p = encode_page(PageType::Directory, 6, 1, 4, 0, 0, 2, &body, 8192, 5);
        let h = verify(&p, 5, 6, 8192).expect("verifies");
        assert_eq!(directory(&p, &h, 7).expect("decodes"), es.to_vec());
        assert!(directory(&p, &h, 5).is_err(), "entries past page_count are refused");
        let mut tb = Vec::new();
        encode_tombstone(&mut tb, 9, 10);
        let p = encode_page(PageType::Tombstone, 1, 1, 1, 10, 10, 0, &tb, 8192, 5);
        let h = verify(&p, 5, 1, 8192).expect("verifies");
        assert_eq!(tombstones(&p, &h).expect("decodes"), vec![(9, 10)]);
    }
}
