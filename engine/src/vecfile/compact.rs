//! Compaction's writer (FORMAT.md §4.5): a new generation of the vector file holding only the
//! live records of a checkpointed one, with the same slots, written page by page in memory
//! bounded by a few pages (not by the store's size).

use memento_format::page::{self, DirEntry, PageType, QuantEntry, RecordEntry, RecordPacker};
use memento_format::superblock::{Slot, Superblock};

use super::{ChunkWriter, VecFile, CHUNK};
use crate::error::{Error, Result};
use crate::slots::SlotBitmap;
use crate::storage::Storage;

/// The name of the new generation while it is written.
pub(crate) const COMPACT_FILE: &str = "memento.vec.new";

/// What a compaction wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compacted {
    /// Live vectors copied.
    pub vectors: u64,
    /// Record entries copied (a live record's put and its updates).
    pub records: u64,
    /// Bytes of the new file.
    pub bytes: u64,
}

/// Pages appended one after another, numbered from 1, through the checkpoint's buffered writer.
struct Pages<'a> {
    out: ChunkWriter<'a>,
    next: u64,
    page_size: usize,
    dir_vec: Vec<DirEntry>,
    dir_other: Vec<DirEntry>,
}

impl Pages<'_> {
    fn page(&mut self, bytes: usize) -> Result<(&mut [u8], u64)> {
        let no = self.next;
        self.next += (bytes / self.page_size) as u64;
        Ok((self.out.next(bytes)?, no))
    }
}

/// The live vectors of one future page, gathered from the old pages in slot order.
struct Gather<T> {
    slots: Vec<u64>,
    items: Vec<T>,
    min_lsn: u64,
    max_lsn: u64,
}

impl<T> Gather<T> {
    fn new() -> Self {
        Gather { slots: Vec::new(), items: Vec::new(), min_lsn: u64::MAX, max_lsn: 0 }
    }
    fn clear(&mut self) {
        self.slots.clear();
        self.items.clear();
        self.min_lsn = u64::MAX;
        self.max_lsn = 0;
    }
}

impl VecFile {
    /// Writes the live records of this (checkpointed) file, with their slots, int8 copies and
    /// record entries, as a new file [`COMPACT_FILE`] with superblock `sequence + 1` in slot A
    /// (and a copy of it with `sequence` in slot B),
    /// a new salt, and `wal_generation + 1`; fsyncs it. `dead` holds the deleted slots. The
    /// caller renames it over the vector file (the commit point) and rotates the WAL.
    pub(crate) fn write_compacted(&self, storage: &dyn Storage, dead: &SlotBitmap, salt: u32) -> Result<(Superblock, Compacted)> {
        let ps = self.sb.page_size as usize;
        let seq = self.sb.sequence + 1;
        let io = |what: &'static str| move |e| Error::io(format!("{what} the compacted vector file"), e);
        storage.remove(COMPACT_FILE).map_err(io("removing an old"))?;
        let file = storage.open(COMPACT_FILE, true).map_err(io("creating"))?;
        file.set_len(0).map_err(io("truncating"))?;
        let mut pages = Pages {
            out: ChunkWriter { file: file.as_ref(), buf: Vec::with_capacity(CHUNK), at: ps as u64 },
            next: 1,
            page_size: ps,
            dir_vec: Vec::new(),
            dir_other: Vec::new(),
        };
        let mut done = Compacted { vectors: 0, records: 0, bytes: 0 };

        // Vector pages: the live vectors, packed full.
        let dim = self.layout.dim;
        let (cap, qcap) = self.capacities();
        let mut g: Gather<f32> = Gather::new();
        let flush_vec = |pages: &mut Pages<'_>, g: &mut Gather<f32>| -> Result<()> {
            if g.slots.is_empty() {
                return Ok(());
            }
            let (p, no) = pages.page(ps)?;
            self.layout.encode_into(p, no, seq, g.min_lsn, g.max_lsn, &g.slots, &g.items, salt);
            pages.dir_vec.push(DirEntry { page_no: no, first_slot: g.slots[0], span: 1, page_type: PageType::Vector });
            g.clear();
            Ok(())
        };
        for i in 0..self.vector_pages() {
            let (slots, vecs) = self.vector_page(i)?;
            let (_, h) = self.page(self.dir[i].page_no, 1)?;
            for (j, &slot) in slots.iter().enumerate() {
                if dead.contains(slot) {
                    continue;
                }
                g.slots.push(slot);
                g.items.extend_from_slice(&vecs[j * dim..(j + 1) * dim]);
                g.min_lsn = g.min_lsn.min(h.min_lsn);
                g.max_lsn = g.max_lsn.max(h.max_lsn);
                done.vectors += 1;
                if g.slots.len() == cap {
                    flush_vec(&mut pages, &mut g)?;
                }
            }
        }
        flush_vec(&mut pages, &mut g)?;

        // Quantized pages: the same vectors' int8 copies, as they are (not quantized again).
        let mut q: Gather<QuantEntry> = Gather::new();
        let mut codes: Vec<i8> = Vec::new();
        let flush_quant = |pages: &mut Pages<'_>, q: &mut Gather<QuantEntry>, codes: &mut Vec<i8>| -> Result<()> {
            if q.slots.is_empty() {
                return Ok(());
            }
            let (p, no) = pages.page(ps)?;
            self.qlayout.encode_into(p, no, seq, q.min_lsn, q.max_lsn, &q.slots, &q.items, codes, salt);
            pages.dir_other.push(DirEntry { page_no: no, first_slot: q.slots[0], span: 1, page_type: PageType::Quantized });
            q.clear();
            codes.clear();
            Ok(())
        };
        for i in 0..self.quant_pages() {
            let (slots, params, qcodes) = self.quant_page(i)?;
            let (_, h) = self.page(self.quant_dir[i].page_no, 1)?;
            for (j, &slot) in slots.iter().enumerate() {
                if dead.contains(slot) {
                    continue;
                }
                q.slots.push(slot);
                q.items.push(params[j]);
                codes.extend_from_slice(&qcodes[j * dim..(j + 1) * dim]);
                q.min_lsn = q.min_lsn.min(h.min_lsn);
                q.max_lsn = q.max_lsn.max(h.max_lsn);
                if q.slots.len() == qcap {
                    flush_quant(&mut pages, &mut q, &mut codes)?;
                }
            }
        }
        flush_quant(&mut pages, &mut q, &mut codes)?;

        // Record pages: the entries of live slots, in their order (a put, then its updates).
        let mut packer = RecordPacker::new(ps);
        let mut failed: Option<Error> = None;
        let write_done = |pages: &mut Pages<'_>, packer: &mut RecordPacker| -> Result<()> {
            for (body, count, lo, hi) in packer.done.drain(..) {
                let bytes = page::encode_page(PageType::Record, pages.next, seq, count, lo, hi, 0, &body, ps, salt);
                let (p, no) = pages.page(bytes.len())?;
                p.copy_from_slice(&bytes);
                pages.dir_other.push(DirEntry { page_no: no, first_slot: 0, span: (bytes.len() / ps) as u32, page_type: PageType::Record });
            }
            Ok(())
        };
        self.for_each_record(&mut |e: RecordEntry<'_>| {
            if failed.is_some() || dead.contains(e.slot()) {
                return;
            }
            packer.push(&e);
            done.records += 1;
            if packer.done.len() >= 4 {
                if let Err(x) = write_done(&mut pages, &mut packer) {
                    failed = Some(x);
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        packer.flush();
        write_done(&mut pages, &mut packer)?;

        // The directory: vector pages first (by slot), then the others.
        let n_vector = pages.dir_vec.len();
        let mut body = Vec::with_capacity((pages.dir_vec.len() + pages.dir_other.len()) * page::dir_entry::LEN);
        for e in pages.dir_vec.iter().chain(&pages.dir_other) {
            e.encode_into(&mut body);
        }
        let entries = (pages.dir_vec.len() + pages.dir_other.len()) as u32;
        let bytes = page::encode_page(PageType::Directory, pages.next, seq, entries, 0, 0, n_vector as u64, &body, ps, salt);
        let (p, dir_page) = pages.page(bytes.len())?;
        p.copy_from_slice(&bytes);
        let dir_span = (bytes.len() / ps) as u32;
        pages.out.flush()?;
        let page_count = pages.next;

        // The header page: the new superblock in slot A, and the same one sequence lower in
        // slot B (a valid second copy of the new generation, which the next checkpoint
        // overwrites; an empty copy would be indistinguishable from a damaged one).
        let mut sb = self.sb.clone();
        sb.sequence = seq;
        sb.file_salt = salt;
        sb.page_count = page_count;
        sb.dir_page = dir_page;
        sb.dir_span = dir_span;
        sb.wal_generation = self.sb.wal_generation + 1;
        let mut header = vec![0u8; ps];
        header[Slot::A.offset() as usize..][..memento_format::superblock::LEN].copy_from_slice(&sb.encode());
        let second = Superblock { sequence: seq - 1, ..sb.clone() };
        header[Slot::B.offset() as usize..][..memento_format::superblock::LEN].copy_from_slice(&second.encode());
        file.write_all_at(&header, 0).map_err(io("writing the header of"))?;
        file.sync_all().map_err(io("syncing"))?;
        done.bytes = page_count * ps as u64;
        Ok((sb, done))
    }
}
