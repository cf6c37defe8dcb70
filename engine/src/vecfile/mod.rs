//! The vector file: superblocks, the sealed (mapped) page prefix, the directory, and the
//! checkpoint writer (FORMAT.md §2 and §4.2).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod compact;
pub(crate) use compact::COMPACT_FILE;

use memento_format::page::{self, DirEntry, PageHeader, PageType, QuantEntry, QuantLayout, RecordEntry, RecordPacker, VectorLayout};
use memento_format::superblock::{self, Slot, Superblock};

use crate::error::{Error, Result};
use crate::storage::{Mapping, Storage, StorageFile};

/// File name of the vector file.
pub const VEC_FILE: &str = "memento.vec";

/// An owned record-page entry written since the last checkpoint.
#[derive(Debug, Clone)]
pub(crate) enum PendingRecord {
    Put { slot: u64, lsn: u64, id: String, text: Option<String>, metadata: Option<String> },
    Update { slot: u64, lsn: u64, text: Option<Option<String>>, metadata: Option<Option<String>> },
}

impl PendingRecord {
    pub(crate) fn as_entry(&self) -> RecordEntry<'_> {
        match self {
            PendingRecord::Put { slot, lsn, id, text, metadata } => {
                RecordEntry::Put { slot: *slot, lsn: *lsn, id, text: text.as_deref(), metadata: metadata.as_deref() }
            }
            PendingRecord::Update { slot, lsn, text, metadata } => {
                RecordEntry::Update { slot: *slot, lsn: *lsn, text: text.as_ref().map(|t| t.as_deref()), metadata: metadata.as_ref().map(|m| m.as_deref()) }
            }
        }
    }
}

/// The vectors of one future vector page, allocated at full capacity once.
#[derive(Debug)]
pub(crate) struct PendingPage {
    /// Slots, increasing.
    pub slots: Vec<u64>,
    /// `slots.len() * dim` floats.
    pub vectors: Vec<f32>,
    pub min_lsn: u64,
    pub max_lsn: u64,
}

/// The int8 copies of the vectors of one future quantized page (FORMAT.md §2.8).
#[derive(Debug)]
pub(crate) struct PendingQuant {
    /// Slots, increasing.
    pub slots: Vec<u64>,
    pub params: Vec<QuantEntry>,
    /// `slots.len() * dim` codes.
    pub codes: Vec<i8>,
    pub min_lsn: u64,
    pub max_lsn: u64,
}

/// Everything committed since the last checkpoint, held in memory (and in the WAL) until the
/// next checkpoint writes it as pages. Vectors are kept page by page, in the shape the
/// checkpoint writes, so nothing is reallocated or regrouped on the way.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub pages: Vec<PendingPage>,
    pub n_vectors: usize,
    /// Int8 copies of the pending vectors, and of the sealed ones when the file predates
    /// quantized pages (then the first of these precede every pending vector).
    pub quant: Vec<PendingQuant>,
    pub records: Vec<PendingRecord>,
    /// (slot, lsn).
    pub tombstones: Vec<(u64, u64)>,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.n_vectors == 0 && self.records.is_empty() && self.tombstones.is_empty() && self.quant.is_empty()
    }
    /// Append the int8 copy of a vector (its slot is greater than every pending one) to a
    /// quantized page of `capacity`.
    pub(crate) fn push_quant(&mut self, slot: u64, lsns: (u64, u64), v: &[f32], capacity: usize) {
        if self.quant.last().is_none_or(|p| p.slots.len() == capacity) {
            self.quant.push(PendingQuant {
                slots: Vec::with_capacity(capacity),
                params: Vec::with_capacity(capacity),
                codes: Vec::with_capacity(capacity * v.len()),
                min_lsn: lsns.0,
                max_lsn: lsns.1,
            });
        }
        if let Some(p) = self.quant.last_mut() {
            let at = p.codes.len();
            p.codes.resize(at + v.len(), 0);
            p.params.push(crate::kernels::quantize_vector(v, &mut p.codes[at..]));
            p.slots.push(slot);
            p.min_lsn = p.min_lsn.min(lsns.0);
            p.max_lsn = p.max_lsn.max(lsns.1);
        }
    }
    /// Append a vector (its slot is greater than every pending one) to a page of `capacity`,
    /// and its int8 copy to a quantized page of `qcapacity`.
    pub(crate) fn push_vector(&mut self, slot: u64, lsn: u64, v: &[f32], capacity: usize, qcapacity: usize) {
        self.push_quant(slot, (lsn, lsn), v, qcapacity);
        if self.pages.last().is_none_or(|p| p.slots.len() == capacity) {
            self.pages.push(PendingPage { slots: Vec::with_capacity(capacity), vectors: Vec::with_capacity(capacity * v.len()), min_lsn: lsn, max_lsn: lsn });
        }
        if let Some(p) = self.pages.last_mut() {
            p.slots.push(slot);
            p.vectors.extend_from_slice(v);
            p.max_lsn = lsn;
        }
        self.n_vectors += 1;
    }
    pub(crate) fn vector(&self, slot: u64, dim: usize) -> Option<&[f32]> {
        let i = self.pages.partition_point(|p| p.slots[0] <= slot).checked_sub(1)?;
        let p = &self.pages[i];
        let j = p.slots.binary_search(&slot).ok()?;
        Some(&p.vectors[j * dim..(j + 1) * dim])
    }
}

/// Writes consecutive pages through a buffer of a few MiB: one huge write is much slower than
/// the same bytes in moderate writes (the page cache copy), and the buffer stays small.
struct ChunkWriter<'a> {
    file: &'a dyn StorageFile,
    buf: Vec<u8>,
    at: u64,
}

const CHUNK: usize = 4 << 20;

impl ChunkWriter<'_> {
    /// `len` zeroed bytes at the end of the buffer, flushing first if they would not fit.
    fn next(&mut self, len: usize) -> Result<&mut [u8]> {
        if !self.buf.is_empty() && self.buf.len() + len > CHUNK {
            self.flush()?;
        }
        let s = self.buf.len();
        self.buf.resize(s + len, 0);
        Ok(&mut self.buf[s..])
    }
    fn flush(&mut self) -> Result<()> {
        self.file.write_all_at(&self.buf, self.at).map_err(|e| Error::io("writing checkpoint pages to the vector file", e))?;
        self.at += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// A vector page's slots and vectors, borrowed from the mapping when aligned.
pub(crate) type VectorPageView<'a> = (Cow<'a, [u64]>, Cow<'a, [f32]>);
/// A quantized page's slots, parameters and codes.
pub(crate) type QuantPageView<'a> = (Cow<'a, [u64]>, Cow<'a, [QuantEntry]>, &'a [i8]);

/// The vector file as of its last checkpoint.
pub(crate) struct VecFile {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    sb: Superblock,
    sb_slot: Slot,
    /// The other superblock copy's damage, when it did not decode (a copy that is merely older
    /// is fine): open names it when the WAL does not continue the copy in use, since the lost
    /// newer checkpoint is then the cause (issue 13, item 9).
    other_copy_damage: Option<String>,
    layout: VectorLayout,
    qlayout: QuantLayout,
    map: Mapping,
    /// The directory: `n_vector` vector pages first (by slot), then the others.
    dir: Vec<DirEntry>,
    n_vector: usize,
    /// The quantized pages of the directory, in slot order.
    quant_dir: Vec<DirEntry>,
    /// One bit per page unit: verified since open.
    verified: Vec<AtomicU64>,
}

/// Map the sealed pages: from page 1 (after the superblocks, which checkpoints rewrite) to
/// `sealed` bytes.
fn map_sealed(file: &dyn StorageFile, page_size: u64, sealed: u64) -> Result<Mapping> {
    file.map(page_size, sealed - page_size).map_err(|e| Error::io("mapping the vector file", e))
}

/// The body checks a page gets once its CRC verifies (vector and quantized pages: count and
/// slot order, quantized parameters). Record, tombstone and directory bodies are checked as
/// they are decoded. Shared by the engine's lazy page verification and the inspector.
pub(crate) fn check_body(layout: &VectorLayout, qlayout: &QuantLayout, bytes: &[u8], h: &PageHeader) -> std::result::Result<(), memento_format::DecodeError> {
    match h.page_type {
        PageType::Vector => layout.check(bytes, h),
        PageType::Quantized => qlayout.check(bytes, h),
        _ => Ok(()),
    }
}

impl VecFile {
    /// Write a new, empty vector file atomically (`.new` + rename + directory fsync).
    pub fn create(storage: &dyn Storage, sb: &Superblock) -> Result<()> {
        let tmp = format!("{VEC_FILE}.new");
        let io = |what: &str, e| Error::io(format!("{what} the new vector file"), e);
        let f = storage.open(&tmp, true).map_err(|e| io("creating", e))?;
        f.set_len(0).map_err(|e| io("truncating", e))?;
        let mut header = vec![0u8; sb.page_size as usize];
        header[..superblock::LEN].copy_from_slice(&sb.encode());
        f.write_all_at(&header, 0).map_err(|e| io("writing", e))?;
        f.sync_all().map_err(|e| io("syncing", e))?;
        storage.rename(&tmp, VEC_FILE).map_err(|e| io("renaming", e))?;
        storage.sync_dir().map_err(|e| io("syncing the directory of", e))?;
        Ok(())
    }

    /// Open and check: superblocks, versions, length, directory. Reads no other page.
    pub fn open(storage: &dyn Storage, path: PathBuf) -> Result<VecFile> {
        let file = storage.open(VEC_FILE, false).map_err(|e| Error::io("opening the vector file", e))?;
        Self::open_file(file, path)
    }

    /// [`VecFile::open`] with the file opened read-only, for a reader in another process
    /// (FORMAT.md §4.4): it never writes the file, so it needs no write permission.
    pub fn open_read_only(storage: &dyn Storage, path: PathBuf) -> Result<VecFile> {
        let file = storage
            .open_read(VEC_FILE)
            .map_err(|e| Error::io("opening the vector file", e))?
            .ok_or_else(|| Error::io("opening the vector file", std::io::Error::from(std::io::ErrorKind::NotFound)))?;
        Self::open_file(file, path)
    }

    fn open_file(file: Arc<dyn StorageFile>, path: PathBuf) -> Result<VecFile> {
        let file_len = || file.len().map_err(|e| Error::io("reading the vector file's length", e));
        let Current { sb, slot: sb_slot, other_copy_damage } = current_superblock(&path, file_len()?, |b, off| file.read_exact_at(b, off))?;
        // The length that must cover the checkpoint's pages is read after the superblock: a
        // checkpoint appends its pages before it writes the superblock that counts them, so a
        // reader in another process that read the length first, and then a superblock written
        // meanwhile, would take a growing file for a truncated one (FORMAT.md §4.4).
        let len = file_len()?;
        let ps = u64::from(sb.page_size);
        let sealed = sb.page_count.checked_mul(ps).ok_or_else(|| Error::corrupted(&path, 72, "page count overflows"))?;
        if len < sealed {
            return Err(Error::corrupted(&path, len, format!("the file is truncated: it holds {len} bytes but its checkpoint covers {sealed}")));
        }
        let layout =
            VectorLayout::new(sb.dimension as usize, sb.page_size as usize).ok_or_else(|| Error::corrupted(&path, 44, "a vector does not fit one page"))?;
        let qlayout = QuantLayout::new(sb.dimension as usize, sb.page_size as usize)
            .ok_or_else(|| Error::corrupted(&path, 44, "a quantized vector does not fit one page"))?;
        let map = map_sealed(file.as_ref(), ps, sealed)?;
        let mut vf = VecFile {
            file,
            path,
            sb,
            sb_slot,
            other_copy_damage,
            layout,
            qlayout,
            map,
            dir: Vec::new(),
            n_vector: 0,
            quant_dir: Vec::new(),
            verified: Vec::new(),
        };
        vf.reset_verified();
        vf.load_directory()?;
        Ok(vf)
    }

    fn reset_verified(&mut self) {
        let n = (self.sb.page_count as usize).div_ceil(64);
        let old = std::mem::take(&mut self.verified);
        self.verified = (0..n).map(|i| AtomicU64::new(old.get(i).map_or(0, |a| a.load(Ordering::Relaxed)))).collect();
    }

    fn load_directory(&mut self) -> Result<()> {
        if self.sb.dir_page == 0 {
            self.dir.clear();
            self.quant_dir.clear();
            self.n_vector = 0;
            return Ok(());
        }
        let (bytes, h) = self.page(self.sb.dir_page, self.sb.dir_span)?;
        if h.page_type != PageType::Directory {
            return Err(Error::corrupted(&self.path, self.sb.dir_page * u64::from(self.sb.page_size), "the superblock's directory page is not a directory"));
        }
        let dir = page::directory(bytes, &h, self.sb.page_count).map_err(|e| self.decode_err(self.sb.dir_page, e))?;
        self.n_vector = h.aux as usize;
        self.dir = dir;
        self.quant_dir = self.dir.iter().filter(|e| e.page_type == PageType::Quantized).copied().collect();
        if self.sb.flags & superblock::FLAG_QUANTIZED == 0 && !self.quant_dir.is_empty() {
            return Err(Error::corrupted(&self.path, self.sb.dir_page * u64::from(self.sb.page_size), "quantized pages in a file whose flags say it has none"));
        }
        Ok(())
    }

    fn decode_err(&self, page_no: u64, e: memento_format::DecodeError) -> Error {
        Error::corrupted(&self.path, page_no * u64::from(self.sb.page_size) + e.offset as u64, e.reason)
    }

    /// The bytes of a page (whole span), its CRC verified once per open.
    pub fn page(&self, page_no: u64, span: u32) -> Result<(&[u8], PageHeader)> {
        let ps = self.sb.page_size as usize;
        // The mapping starts at page 1 (page 0 holds the superblocks).
        let start = (page_no as usize).checked_sub(1).map(|p| p * ps);
        let bytes = start
            .and_then(|s| self.map.as_ref().as_ref().get(s..s + span as usize * ps))
            .ok_or_else(|| Error::corrupted(&self.path, page_no * ps as u64, "page lies outside the checkpoint's pages"))?;
        let (w, bit) = (page_no as usize / 64, 1u64 << (page_no % 64));
        if self.verified.get(w).is_some_and(|a| a.load(Ordering::Relaxed) & bit != 0) {
            let h = PageHeader::decode(bytes).map_err(|e| self.decode_err(page_no, e))?;
            return Ok((bytes, h));
        }
        let h = page::verify(bytes, self.sb.file_salt, page_no, ps).map_err(|e| self.decode_err(page_no, e))?;
        check_body(&self.layout, &self.qlayout, bytes, &h).map_err(|e| self.decode_err(page_no, e))?;
        if let Some(a) = self.verified.get(w) {
            a.fetch_or(bit, Ordering::Relaxed);
        }
        Ok((bytes, h))
    }

    /// Slots and vectors of the i-th vector page of the directory.
    pub fn vector_page(&self, i: usize) -> Result<VectorPageView<'_>> {
        let e = self.dir[i];
        let (bytes, h) = self.page(e.page_no, 1)?;
        if h.page_type != PageType::Vector || self.layout.slot(bytes, 0) != e.first_slot {
            return Err(Error::corrupted(&self.path, e.page_no * u64::from(self.sb.page_size), "the directory's vector page does not match the page"));
        }
        let n = h.count as usize;
        let sb = &bytes[page::HEADER_LEN..page::HEADER_LEN + 8 * n];
        let slots = match bytemuck::try_cast_slice::<u8, u64>(sb) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned((0..n).map(|j| self.layout.slot(bytes, j)).collect()),
        };
        let vecs = match self.layout.vectors(bytes, n) {
            Some(v) => Cow::Borrowed(v),
            None => Cow::Owned(self.layout.vector_bytes(bytes, n).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        };
        Ok((slots, vecs))
    }

    /// Slots, parameters and codes of the i-th quantized page (in slot order).
    pub fn quant_page(&self, i: usize) -> Result<QuantPageView<'_>> {
        let e = self.quant_dir[i];
        let (bytes, h) = self.page(e.page_no, 1)?;
        if h.page_type != PageType::Quantized || self.qlayout.slot(bytes, 0) != e.first_slot {
            return Err(Error::corrupted(&self.path, e.page_no * u64::from(self.sb.page_size), "the directory's quantized page does not match the page"));
        }
        let n = h.count as usize;
        let sb = &bytes[page::HEADER_LEN..page::HEADER_LEN + 8 * n];
        let slots = match bytemuck::try_cast_slice::<u8, u64>(sb) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned((0..n).map(|j| self.qlayout.slot(bytes, j)).collect()),
        };
        let params = match self.qlayout.params(bytes, n) {
            Some(p) => Cow::Borrowed(p),
            None => Cow::Owned(self.qlayout.params_owned(bytes, n)),
        };
        Ok((slots, params, self.qlayout.codes(bytes, n)))
    }

    /// The bytes of the `i`-th quantized page, checked: at once when this open already verified
    /// it, else by [`VecFile::quant_page`]'s checks (CRC, body, the directory's first slot).
    fn checked_quant_page(&self, i: usize) -> Result<Option<&[u8]>> {
        let Some(e) = self.quant_dir.get(i) else { return Ok(None) };
        let (w, bit) = (e.page_no as usize / 64, 1u64 << (e.page_no % 64));
        if self.verified.get(w).is_none_or(|a| a.load(Ordering::Relaxed) & bit == 0) {
            self.quant_page(i)?;
        }
        let ps = self.sb.page_size as usize;
        let s = (e.page_no as usize - 1) * ps;
        Ok(self.map.as_ref().as_ref().get(s..s + ps))
    }

    /// Entry `j` of the `i`-th quantized page: its codes, parameters and slot (`None` past the
    /// page's count). The graph's walks call this for every node they score, so it reads the
    /// three fields in place instead of decoding the page ([`VecFile::quant_page`]); the page
    /// is verified the first time, as every page is.
    pub fn quant_node(&self, i: usize, j: usize) -> Result<Option<(&[i8], QuantEntry, u64)>> {
        let Some(bytes) = self.checked_quant_page(i)? else { return Ok(None) };
        let count = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) as usize;
        if j >= count {
            return Ok(None);
        }
        let q = &self.qlayout;
        Ok(Some((q.code(bytes, j), q.param(bytes, j), q.slot(bytes, j))))
    }

    /// The codes and parameters of entry `j` of quantized page `i` ([`VecFile::quant_node`]
    /// without the slot and the page's count: an entry past the count reads as the zeros of
    /// unused space; a caller that must know uses `quant_node`).
    pub fn quant_codes(&self, i: usize, j: usize) -> Result<Option<(&[i8], QuantEntry)>> {
        let q = &self.qlayout;
        if j >= q.capacity {
            return Ok(None);
        }
        Ok(self.checked_quant_page(i)?.map(|bytes| (q.code(bytes, j), q.param(bytes, j))))
    }

    /// Ask the cache for what [`VecFile::quant_node`] will read of entry `j` of quantized page
    /// `i` (its codes, parameters and slot), without reading anything.
    pub fn prefetch_node(&self, i: usize, j: usize) {
        let Some(e) = self.quant_dir.get(i) else { return };
        let s = (e.page_no as usize).saturating_sub(1) * self.sb.page_size as usize;
        let map = self.map.as_ref().as_ref();
        let q = &self.qlayout;
        // Every line of the codes, the parameters and the slot. Fetching only the first line
        // of the codes (trusting the hardware prefetcher with the rest) made the walk wait on
        // the third line: builds ran 2.7× slower and searches 1.4× slower (BENCHMARKS.md,
        // "Approximate search").
        for r in q.entry_ranges(j) {
            if let Some(b) = map.get(s + r.start..s + r.end) {
                crate::kernels::prefetch(b);
            }
        }
    }

    /// Whether every sealed vector has a sealed quantized copy (a version-2 file).
    pub fn is_quantized(&self) -> bool {
        self.sb.flags & superblock::FLAG_QUANTIZED != 0
    }

    /// The sealed vector of a slot, if a sealed page holds it.
    pub fn vector(&self, slot: u64) -> Result<Option<Cow<'_, [f32]>>> {
        let vdir = &self.dir[..self.n_vector];
        let i = vdir.partition_point(|e| e.first_slot <= slot);
        if i == 0 {
            return Ok(None);
        }
        let (slots, vecs) = self.vector_page(i - 1)?;
        let dim = self.layout.dim;
        Ok(slots.binary_search(&slot).ok().map(|j| match vecs {
            Cow::Borrowed(v) => Cow::Borrowed(&v[j * dim..(j + 1) * dim]),
            Cow::Owned(v) => Cow::Owned(v[j * dim..(j + 1) * dim].to_vec()),
        }))
    }

    /// Entries of every record page, in directory (LSN) order, calling `f` for each.
    pub fn for_each_record<'a>(&'a self, f: &mut dyn FnMut(RecordEntry<'a>)) -> Result<()> {
        for e in self.dir[self.n_vector..].iter().filter(|e| e.page_type == PageType::Record) {
            let (bytes, h) = self.page(e.page_no, e.span)?;
            for r in page::record_entries(bytes, &h).map_err(|x| self.decode_err(e.page_no, x))? {
                f(r);
            }
        }
        Ok(())
    }

    /// Every tombstone (slot, lsn) in the sealed pages.
    pub fn tombstones(&self) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        for e in self.dir[self.n_vector..].iter().filter(|e| e.page_type == PageType::Tombstone) {
            let (bytes, h) = self.page(e.page_no, e.span)?;
            out.extend(page::tombstones(bytes, &h).map_err(|x| self.decode_err(e.page_no, x))?);
        }
        Ok(out)
    }

    /// Checkpoint step 1: write `pending` as new pages plus a complete new directory past the
    /// sealed prefix, and fsync. Returns the superblock to commit with [`Self::commit`].
    pub fn write_pages(&self, pending: &Pending, next_slot: u64, live_count: u64, checkpoint_lsn: u64) -> Result<(Superblock, Vec<DirEntry>, usize)> {
        let ps = self.sb.page_size as usize;
        let salt = self.sb.file_salt;
        let seq = self.sb.sequence + 1;
        let mut next = self.sb.page_count;
        let mut out = ChunkWriter { file: self.file.as_ref(), buf: Vec::with_capacity(CHUNK), at: next * ps as u64 };
        let mut new_vec = Vec::new();
        let mut new_other = Vec::new();
        for p in &pending.pages {
            let page = out.next(ps)?;
            self.layout.encode_into(page, next, seq, p.min_lsn, p.max_lsn, &p.slots, &p.vectors, salt);
            new_vec.push(DirEntry { page_no: next, first_slot: p.slots[0], span: 1, page_type: PageType::Vector });
            next += 1;
        }
        for q in &pending.quant {
            let page = out.next(ps)?;
            self.qlayout.encode_into(page, next, seq, q.min_lsn, q.max_lsn, &q.slots, &q.params, &q.codes, salt);
            new_other.push(DirEntry { page_no: next, first_slot: q.slots[0], span: 1, page_type: PageType::Quantized });
            next += 1;
        }
        let mut packer = RecordPacker::new(ps);
        for r in &pending.records {
            packer.push(&r.as_entry());
        }
        packer.flush();
        for (body, count, lo, hi) in &packer.done {
            let p = page::encode_page(PageType::Record, next, seq, *count, *lo, *hi, 0, body, ps, salt);
            let span = (p.len() / ps) as u32;
            new_other.push(DirEntry { page_no: next, first_slot: 0, span, page_type: PageType::Record });
            out.next(p.len())?.copy_from_slice(&p);
            next += u64::from(span);
        }
        let per = (ps - page::HEADER_LEN) / page::tombstone_entry::LEN;
        for chunk in pending.tombstones.chunks(per) {
            let mut body = Vec::with_capacity(chunk.len() * 16);
            for &(s, l) in chunk {
                page::encode_tombstone(&mut body, s, l);
            }
            let lo = chunk.iter().map(|t| t.1).min().unwrap_or(0);
            let hi = chunk.iter().map(|t| t.1).max().unwrap_or(0);
            let p = page::encode_page(PageType::Tombstone, next, seq, chunk.len() as u32, lo, hi, 0, &body, ps, salt);
            new_other.push(DirEntry { page_no: next, first_slot: 0, span: 1, page_type: PageType::Tombstone });
            out.next(p.len())?.copy_from_slice(&p);
            next += 1;
        }
        let mut dir: Vec<DirEntry> = Vec::with_capacity(self.dir.len() + new_vec.len() + new_other.len());
        dir.extend_from_slice(&self.dir[..self.n_vector]);
        dir.extend_from_slice(&new_vec);
        let n_vector = dir.len();
        dir.extend_from_slice(&self.dir[self.n_vector..]);
        dir.extend_from_slice(&new_other);
        let mut body = Vec::with_capacity(dir.len() * page::dir_entry::LEN);
        for e in &dir {
            e.encode_into(&mut body);
        }
        let dir_page = next;
        let p = page::encode_page(PageType::Directory, dir_page, seq, dir.len() as u32, 0, 0, n_vector as u64, &body, ps, salt);
        let dir_span = (p.len() / ps) as u32;
        out.next(p.len())?.copy_from_slice(&p);
        out.flush()?;
        next += u64::from(dir_span);
        self.file.sync_data().map_err(|e| Error::io("syncing the vector file", e))?;
        let mut sb = self.sb.clone();
        sb.sequence = seq;
        sb.checkpoint_lsn = checkpoint_lsn;
        sb.next_slot = next_slot;
        sb.page_count = next;
        sb.dir_page = dir_page;
        sb.dir_span = dir_span;
        sb.live_count = live_count;
        sb.wal_generation = self.sb.wal_generation + 1;
        // Every sealed vector now has its int8 copy (a version-1 file is upgraded here: its
        // copies were derived at open and are among the pending ones).
        sb.flags |= superblock::FLAG_QUANTIZED;
        sb.format_version = memento_format::FORMAT_VERSION;
        sb.min_reader_version = memento_format::MIN_READER_VERSION;
        Ok((sb, dir, n_vector))
    }

    /// Checkpoint step 3: write the new superblock into the other slot, fsync, and map the new
    /// sealed prefix.
    pub fn commit(&mut self, sb: Superblock, dir: Vec<DirEntry>, n_vector: usize) -> Result<()> {
        let slot = self.sb_slot.other();
        self.file.write_all_at(&sb.encode(), slot.offset()).map_err(|e| Error::io("writing the superblock", e))?;
        self.file.sync_data().map_err(|e| Error::io("syncing the superblock", e))?;
        let sealed = sb.page_count * u64::from(sb.page_size);
        self.sb = sb;
        self.sb_slot = slot;
        self.quant_dir = dir.iter().filter(|e| e.page_type == PageType::Quantized).copied().collect();
        self.dir = dir;
        self.n_vector = n_vector;
        self.reset_verified();
        self.map = map_sealed(self.file.as_ref(), u64::from(self.sb.page_size), sealed)?;
        Ok(())
    }

    /// The file's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The superblock in use.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The other superblock copy's damage, when it did not decode.
    pub fn other_copy_damage(&self) -> Option<&str> {
        self.other_copy_damage.as_deref()
    }

    /// Vectors per vector page and int8 copies per quantized page.
    pub fn capacities(&self) -> (usize, usize) {
        (self.layout.capacity, self.qlayout.capacity)
    }

    /// Vector pages in the checkpoint.
    pub fn vector_pages(&self) -> usize {
        self.n_vector
    }

    /// Quantized pages in the checkpoint (none in a version-1 file).
    pub fn quant_pages(&self) -> usize {
        if self.is_quantized() {
            self.quant_dir.len()
        } else {
            0
        }
    }

    /// Node numbers of the sealed quantized pages (FORMAT.md §7.1): pages × capacity (the last
    /// page may be partial: its last numbers hold no vector).
    pub fn sealed_nodes(&self) -> u64 {
        self.quant_pages() as u64 * self.qlayout.capacity as u64
    }

    /// The version-1 upgrade (FORMAT.md §2.1): a file without int8 copies gets them derived
    /// from its sealed vectors into `pending`, which the next checkpoint writes. Returns how
    /// many vectors were quantized.
    pub fn derive_int8_copies(&self, pending: &mut Pending) -> Result<u64> {
        let dim = self.sb.dimension as usize;
        let mut n = 0;
        for i in 0..self.n_vector {
            let (_, h) = self.page(self.dir[i].page_no, 1)?;
            let (slots, vecs) = self.vector_page(i)?;
            for (slot, v) in slots.iter().zip(vecs.chunks_exact(dim)) {
                pending.push_quant(*slot, (h.min_lsn, h.max_lsn), v, self.qlayout.capacity);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Bytes of the sealed prefix.
    pub fn sealed_len(&self) -> u64 {
        self.sb.page_count * u64::from(self.sb.page_size)
    }
}

/// The superblock in use of a vector file (see [`current_superblock`]).
pub(crate) struct Current {
    pub(crate) sb: Superblock,
    /// Which copy it is.
    pub(crate) slot: Slot,
    /// The other copy's damage, if it is damaged.
    pub(crate) other_copy_damage: Option<String>,
}

/// Reads both superblock copies of the vector file at `path` (`len` bytes, read through
/// `read_at(buf, offset)`) and returns the newer valid one, checked to be readable by this
/// version (FORMAT.md §2: the copy with the higher sequence wins). Reads nothing else: opening
/// a store and [`crate::peek`] both start here.
pub(crate) fn current_superblock(path: &Path, len: u64, read_at: impl Fn(&mut [u8], u64) -> std::io::Result<()>) -> Result<Current> {
    let read_copy = |off: u64| -> std::result::Result<Superblock, memento_format::DecodeError> {
        let mut b = vec![0u8; superblock::LEN];
        if off + superblock::LEN as u64 > len || read_at(&mut b, off).is_err() {
            return Err(memento_format::DecodeError::new(0, "superblock copy is missing"));
        }
        Superblock::decode(&b)
    };
    let a = read_copy(Slot::A.offset());
    let b = read_copy(Slot::B.offset());
    let reason = match (&a, &b) {
        (Err(ea), Err(eb)) => Some(format!("neither superblock copy is valid (A: {}; B: {})", ea.reason, eb.reason)),
        _ => None,
    };
    let other_copy_damage = match (&a, &b) {
        (Err(e), Ok(_)) => Some(format!("superblock copy A (byte offset {}) is damaged ({})", Slot::A.offset(), e.reason)),
        (Ok(_), Err(e)) => Some(format!("superblock copy B (byte offset {}) is damaged ({})", Slot::B.offset(), e.reason)),
        _ => None,
    };
    let (sb, slot) = superblock::pick_current(a, b).ok_or_else(|| Error::corrupted(path, 0, reason.unwrap_or_default()))?;
    if sb.min_reader_version > memento_format::FORMAT_VERSION {
        return Err(Error::Incompatible {
            reason: format!(
                "the store needs a reader of format version {} or later, and this is version {}",
                sb.min_reader_version,
                memento_format::FORMAT_VERSION
            ),
        });
    }
    Ok(Current { sb, slot, other_copy_damage })
}
