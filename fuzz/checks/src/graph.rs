//! The graph file's decoders (FORMAT.md §7, `memento_format::graph`) on arbitrary bytes.

use memento_format::graph::{self, GraphHeader, MAX_LEVELS, MAX_NEIGHBORS};
use memento_format::page::HEADER_LEN;
use memento_format::superblock::MIN_PAGE_SIZE;

use crate::Bytes;

/// The page size of the level pages built here (the smallest the format allows).
const PAGE_SIZE: usize = MIN_PAGE_SIZE as usize;

/// The graph file's header, level pages and records. The input is a mode byte, then:
/// - mode % 3 = 0: a graph header. `GraphHeader::decode` must not panic; a header it accepts
///   re-encodes to bytes that decode to the same header, its levels lie in order and each holds
///   its records, and its entry is a record of the top level. Mode bit 2: the header's magic,
///   version and CRC are set first, so that the checks behind them are reached.
/// - mode % 3 = 1: a level page: salt (4 bytes), page number (1), level (1), m (2), m0 (2), a
///   record count (2), then the page's bytes. `verify_level_page` must not panic, and every
///   record of a page it accepts goes through `check_record`. Mode bit 2: the page is sealed
///   first with `encode_level_page` (its count clamped to what fits): it must then verify as
///   that page of that level only, and fail with any one bit flipped.
/// - mode % 3 = 2: a record: level (1), most neighbours (2), bound (4), node bound (8), lower
///   bound (4), then its words. `check_record` must not panic, and a record it accepts holds at
///   most the most neighbours, all below the bound (and, at upper levels, a node and a lower
///   record in range).
pub fn graph(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mode = b.u8();
    match mode % 3 {
        0 => header(b.rest(), mode & 4 != 0),
        1 => level_page(&mut b, mode & 4 != 0),
        _ => record(&mut b),
    }
}

fn header(bytes: &[u8], reseal: bool) {
    let mut buf = bytes.to_vec();
    if reseal {
        use graph::header::{crc, graph_version, magic};
        buf.resize(buf.len().max(graph::LEN), 0);
        buf[magic.range()].copy_from_slice(&graph::MAGIC);
        buf[graph_version.range()].copy_from_slice(&graph::GRAPH_VERSION.to_le_bytes());
        let c = memento_format::crc32(0, &[&buf[..crc.offset]]);
        buf[crc.range()].copy_from_slice(&c.to_le_bytes());
    }
    let Ok(h) = GraphHeader::decode(&buf) else { return };
    let encoded = h.encode();
    let again = GraphHeader::decode(&encoded).expect("a graph header the decoder accepted must survive its own encoding");
    assert_eq!(again, h, "encode/decode changed the graph header");
    assert_eq!(again.encode(), encoded, "encoding is not stable");
    // What an accepted header promises the reader of the file.
    assert!(!h.levels.is_empty() && h.levels.len() <= MAX_LEVELS);
    assert_eq!(u64::from(h.levels[0].records), h.node_bound, "level 0 holds one record per node");
    assert!(h.node_count <= h.node_bound);
    let mut next = 1u64;
    for (l, info) in h.levels.iter().enumerate() {
        let per = h.per_page(l);
        assert!(per > 0, "a level-{l} record must fit a page");
        assert_eq!(info.first_page, next, "level {l} must start after the one below");
        assert_eq!(info.pages as usize, (info.records as usize).div_ceil(per), "level {l} must have the pages its records need");
        assert!(l == 0 || info.records <= h.levels[l - 1].records);
        next += u64::from(info.pages);
    }
    assert_eq!(next, h.page_count, "the levels end where the file does");
    if h.node_count > 0 {
        assert!(h.entry < h.levels[h.max_level()].records, "the entry is a record of the top level");
    }
}

fn level_page(b: &mut Bytes<'_>, seal: bool) {
    let salt = b.u32();
    let page_no = u64::from(b.u8());
    let level = usize::from(b.u8()) % MAX_LEVELS;
    let m = b.u16() % (MAX_NEIGHBORS + 1);
    let m0 = b.u16() % (MAX_NEIGHBORS + 1);
    let count = u32::from(b.u16());
    let rl = graph::record_len(level, m, m0);
    let per = graph::per_page(PAGE_SIZE, rl);
    let mut page = vec![0u8; PAGE_SIZE];
    let body = b.rest();
    if seal {
        let count = count.min(per as u32);
        let bytes = count as usize * rl;
        let mut records = vec![0u8; bytes];
        let n = body.len().min(bytes);
        records[..n].copy_from_slice(&body[..n]);
        graph::encode_level_page(&mut page, page_no, level, count, &records, 7, salt);
        let h = graph::verify_level_page(&page, salt, page_no, level, count, rl).expect("a sealed level page must verify");
        assert_eq!((h.count, h.aux, h.payload_len as usize), (count, level as u64, bytes));
        assert!(graph::verify_level_page(&page, salt, page_no + 1, level, count, rl).is_err(), "a level page passed as another page");
        assert!(graph::verify_level_page(&page, salt, page_no, (level + 1) % MAX_LEVELS, count, rl).is_err(), "a level page passed as another level");
        assert!(graph::verify_level_page(&page, salt, page_no, level, count + 1, rl).is_err(), "a level page passed with another count");
        let bit = (usize::from(b.u16()) * 8 + usize::from(b.u8())) % (PAGE_SIZE * 8);
        let mut flipped = page.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(graph::verify_level_page(&flipped, salt, page_no, level, count, rl).is_err(), "a flipped bit at {bit} passed the check");
    } else {
        let n = body.len().min(PAGE_SIZE);
        page[..n].copy_from_slice(&body[..n]);
    }
    let Ok(h) = graph::verify_level_page(&page, salt, page_no, level, count, rl) else { return };
    assert!(h.count as usize * rl <= PAGE_SIZE - HEADER_LEN, "a verified page's records lie inside it");
    let max = if level == 0 { m0 } else { m };
    let bound = b.u32();
    let words: Vec<u32> = page[HEADER_LEN..HEADER_LEN + h.count as usize * rl].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    for rec in words.chunks(rl / 4) {
        check(rec, level, max, bound, u64::from(bound), bound);
    }
}

fn record(b: &mut Bytes<'_>) {
    let level = usize::from(b.u8() % 4);
    let max = b.u16();
    let bound = b.u32();
    let node_bound = b.u64();
    let down_bound = b.u32();
    let words: Vec<u32> = b.rest().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    check(&words, level, max, bound, node_bound, down_bound);
    // The same words as a whole record of the size the format gives them.
    let rl = graph::record_len(level, max.min(MAX_NEIGHBORS), max.min(MAX_NEIGHBORS)) / 4;
    if words.len() >= rl {
        check(&words[..rl], level, max, bound, node_bound, down_bound);
    }
}

/// `check_record`, and what it promises when it accepts.
fn check(rec: &[u32], level: usize, max: u16, bound: u32, node_bound: u64, down_bound: u32) {
    if graph::check_record(rec, level, max, bound, node_bound, down_bound).is_err() {
        return;
    }
    let head = if level == 0 { 1 } else { 3 };
    let count = rec[head - 1] as usize;
    assert!(count <= usize::from(max) && head + count <= rec.len(), "an accepted record holds at most {max} neighbours");
    assert!(rec[head..head + count].iter().all(|&n| n < bound), "an accepted record's neighbours are below {bound}");
    if level > 0 {
        assert!(u64::from(rec[0]) < node_bound && rec[1] < down_bound, "an accepted upper record names a node and a lower record in range");
    }
}
