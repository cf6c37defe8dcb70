//! The graph file `memento.graph` (FORMAT.md §7): its header, and the layout of its level pages
//! (page types 17 and 18). No I/O.

use crate::page::{self, PageHeader, PageType, HEADER_LEN};
use crate::superblock::Metric;
use crate::DecodeError;

/// Field offsets and sizes of the graph header.
pub mod header {
    crate::layout!(512;
        magic: 8,
        graph_version: 4,
        graph_salt: 4,
        store_uuid: 16,
        vec_salt: 4,
        dimension: 4,
        metric: 1,
        reserved_41: 1,
        max_level: 2,
        page_size: 4,
        qcap: 4,
        m: 2,
        m0: 2,
        ef_construction: 4,
        entry: 4,
        node_bound: 8,
        node_count: 8,
        vec_sequence: 8,
        page_count: 8,
        levels: 256,
        est_recall: 4,
        est_sample: 4,
        est_ef: 4,
        reserved_364: 144,
        crc: 4,
    );
}

/// Size of the header.
pub const LEN: usize = header::LEN;
/// `MEMGRAPH`.
pub const MAGIC: [u8; 8] = *b"MEMGRAPH";
/// The graph version this crate writes and reads.
pub const GRAPH_VERSION: u32 = 1;
/// Levels a graph may have (0 to `MAX_LEVELS − 1`).
pub const MAX_LEVELS: usize = 16;
/// Most neighbours per record the format allows (at any level).
pub const MAX_NEIGHBORS: u16 = 1024;

/// Where one level's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LevelInfo {
    /// First page of the level.
    pub first_page: u64,
    /// Records of the level.
    pub records: u32,
    /// Pages of the level.
    pub pages: u32,
}

/// The decoded graph header.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct GraphHeader {
    pub graph_salt: u32,
    pub store_uuid: [u8; 16],
    pub vec_salt: u32,
    pub dimension: u32,
    pub metric: Metric,
    pub page_size: u32,
    pub qcap: u32,
    pub m: u16,
    pub m0: u16,
    pub ef_construction: u32,
    pub entry: u32,
    pub node_bound: u64,
    pub node_count: u64,
    pub vec_sequence: u64,
    pub page_count: u64,
    /// One entry per level, `levels.len() − 1` is `max_level`.
    pub levels: Vec<LevelInfo>,
    /// The measured recall@10 (0 if none), its sample size and its `ef` (FORMAT.md §7.6).
    pub est_recall: f32,
    pub est_sample: u32,
    pub est_ef: u32,
}

impl GraphHeader {
    /// The top level.
    pub fn max_level(&self) -> usize {
        self.levels.len().saturating_sub(1)
    }

    /// Record size in bytes at `level`.
    pub fn record_len(&self, level: usize) -> usize {
        record_len(level, self.m, self.m0)
    }

    /// Records per page at `level`.
    pub fn per_page(&self, level: usize) -> usize {
        per_page(self.page_size as usize, self.record_len(level))
    }

    /// Encode into 512 bytes with the CRC.
    pub fn encode(&self) -> [u8; LEN] {
        use header::*;
        let mut b = [0u8; LEN];
        magic.put_bytes(&mut b, &MAGIC);
        graph_version.put_u32(&mut b, GRAPH_VERSION);
        graph_salt.put_u32(&mut b, self.graph_salt);
        store_uuid.put_bytes(&mut b, &self.store_uuid);
        vec_salt.put_u32(&mut b, self.vec_salt);
        dimension.put_u32(&mut b, self.dimension);
        metric.put_u8(&mut b, self.metric.code());
        max_level.put_u16(&mut b, self.max_level() as u16);
        page_size.put_u32(&mut b, self.page_size);
        qcap.put_u32(&mut b, self.qcap);
        m.put_u16(&mut b, self.m);
        m0.put_u16(&mut b, self.m0);
        ef_construction.put_u32(&mut b, self.ef_construction);
        entry.put_u32(&mut b, self.entry);
        node_bound.put_u64(&mut b, self.node_bound);
        node_count.put_u64(&mut b, self.node_count);
        vec_sequence.put_u64(&mut b, self.vec_sequence);
        page_count.put_u64(&mut b, self.page_count);
        est_recall.put_u32(&mut b, self.est_recall.to_bits());
        est_sample.put_u32(&mut b, self.est_sample);
        est_ef.put_u32(&mut b, self.est_ef);
        for (l, info) in self.levels.iter().enumerate().take(MAX_LEVELS) {
            let at = levels.offset + 16 * l;
            b[at..at + 8].copy_from_slice(&info.first_page.to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&info.records.to_le_bytes());
            b[at + 12..at + 16].copy_from_slice(&info.pages.to_le_bytes());
        }
        let c = crate::crc32(0, &[&b[..crc.offset]]);
        crc.put_u32(&mut b, c);
        b
    }

    /// Decode and check a header: CRC, magic, version, and that its fields describe a possible
    /// graph (levels in order inside the file, each holding its records, the entry a record of
    /// the top level, the level-0 records one per node). The checks against the store are the
    /// caller's.
    pub fn decode(b: &[u8]) -> Result<GraphHeader, DecodeError> {
        use header::*;
        let b = b.get(..LEN).ok_or_else(|| DecodeError::new(b.len(), "graph header is truncated"))?;
        if b[magic.range()] != MAGIC {
            return Err(DecodeError::new(magic.offset, "bad graph magic"));
        }
        if crate::crc32(0, &[&b[..crc.offset]]) != crc.get_u32(b) {
            return Err(DecodeError::new(crc.offset, "graph header checksum mismatch"));
        }
        let v = graph_version.get_u32(b);
        if v != GRAPH_VERSION {
            return Err(DecodeError::new(graph_version.offset, format!("graph version {v} (this reader knows {GRAPH_VERSION})")));
        }
        let mc = metric.get_u8(b);
        let metric_v = Metric::from_code(mc).ok_or_else(|| DecodeError::new(metric.offset, format!("unknown metric code {mc}")))?;
        let top = max_level.get_u16(b) as usize;
        if top >= MAX_LEVELS {
            return Err(DecodeError::new(max_level.offset, format!("max level {top} is not below {MAX_LEVELS}")));
        }
        let (mv, m0v) = (m.get_u16(b), m0.get_u16(b));
        if mv < 2 || m0v < 2 || mv > MAX_NEIGHBORS || m0v > MAX_NEIGHBORS {
            return Err(DecodeError::new(m.offset, format!("neighbour counts m = {mv}, m0 = {m0v} are out of range (2 to {MAX_NEIGHBORS})")));
        }
        let ps = page_size.get_u32(b);
        if !ps.is_power_of_two() || !(crate::superblock::MIN_PAGE_SIZE..=crate::superblock::MAX_PAGE_SIZE).contains(&ps) {
            return Err(DecodeError::new(page_size.offset, format!("page size {ps} is not a power of two from 8 KiB to 16 MiB")));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[store_uuid.range()]);
        let mut lv = Vec::with_capacity(top + 1);
        for l in 0..MAX_LEVELS {
            let at = levels.offset + 16 * l;
            let info = LevelInfo {
                first_page: u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default()),
                records: u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap_or_default()),
                pages: u32::from_le_bytes(b[at + 12..at + 16].try_into().unwrap_or_default()),
            };
            if l <= top {
                lv.push(info);
            } else if info != LevelInfo::default() {
                return Err(DecodeError::new(at, format!("level {l} is above the max level {top} but not empty")));
            }
        }
        let h = GraphHeader {
            graph_salt: graph_salt.get_u32(b),
            store_uuid: uuid,
            vec_salt: vec_salt.get_u32(b),
            dimension: dimension.get_u32(b),
            metric: metric_v,
            page_size: ps,
            qcap: qcap.get_u32(b),
            m: mv,
            m0: m0v,
            ef_construction: ef_construction.get_u32(b),
            entry: entry.get_u32(b),
            node_bound: node_bound.get_u64(b),
            node_count: node_count.get_u64(b),
            vec_sequence: vec_sequence.get_u64(b),
            page_count: page_count.get_u64(b),
            levels: lv,
            est_recall: f32::from_bits(est_recall.get_u32(b)),
            est_sample: est_sample.get_u32(b),
            est_ef: est_ef.get_u32(b),
        };
        if !(0.0..=1.0).contains(&h.est_recall) {
            return Err(DecodeError::new(est_recall.offset, "the recall estimate is not a number from 0 to 1"));
        }
        h.check_levels()?;
        Ok(h)
    }

    fn check_levels(&self) -> Result<(), DecodeError> {
        use header::*;
        if self.qcap == 0 {
            return Err(DecodeError::new(qcap.offset, "quantized page capacity is zero"));
        }
        if u64::from(self.levels[0].records) != self.node_bound {
            return Err(DecodeError::new(levels.offset + 8, format!("level 0 holds {} records for {} nodes", self.levels[0].records, self.node_bound)));
        }
        if self.node_count > self.node_bound {
            return Err(DecodeError::new(node_count.offset, "more nodes than node numbers"));
        }
        let mut next = 1u64;
        for (l, info) in self.levels.iter().enumerate() {
            let at = levels.offset + 16 * l;
            let per = self.per_page(l);
            if per == 0 {
                return Err(DecodeError::new(page_size.offset, format!("a level-{l} record does not fit a page")));
            }
            let need = (info.records as usize).div_ceil(per);
            if info.pages as usize != need || info.first_page != next {
                return Err(DecodeError::new(at, format!("level {l} has {} pages from page {} (expected {need} from {next})", info.pages, info.first_page)));
            }
            if l > 0 && info.records > self.levels[l - 1].records {
                return Err(DecodeError::new(at + 8, format!("level {l} has more records than the level below")));
            }
            next += u64::from(info.pages);
        }
        if next != self.page_count {
            return Err(DecodeError::new(page_count.offset, format!("the levels end at page {next} but the file has {} pages", self.page_count)));
        }
        let top = self.levels[self.max_level()];
        if self.node_count > 0 && self.entry >= top.records {
            return Err(DecodeError::new(entry.offset, format!("entry {} is not a record of the top level ({} records)", self.entry, top.records)));
        }
        Ok(())
    }
}

/// Record size in bytes at `level` for neighbour counts `m` (levels ≥ 1) and `m0` (level 0).
pub fn record_len(level: usize, m: u16, m0: u16) -> usize {
    if level == 0 {
        4 * (1 + usize::from(m0))
    } else {
        4 * (3 + usize::from(m))
    }
}

/// Records of `record_len` bytes per page of `page_size` (0 when none fits).
pub fn per_page(page_size: usize, record_len: usize) -> usize {
    page_size.saturating_sub(HEADER_LEN) / record_len.max(1)
}

/// The page type of a level's pages.
pub fn page_type(level: usize) -> PageType {
    if level == 0 {
        PageType::GraphLevel0
    } else {
        PageType::GraphUpper
    }
}

/// Fill and seal one level page: `records` (`count × record_len` bytes, little-endian u32s) at
/// offset 64 of `page` (zeroed, `page_size` bytes).
pub fn encode_level_page(page: &mut [u8], page_no: u64, level: usize, count: u32, records: &[u8], vec_sequence: u64, salt: u32) {
    page[HEADER_LEN..HEADER_LEN + records.len()].copy_from_slice(records);
    let h = PageHeader {
        page_type: page_type(level),
        page_no,
        span: 1,
        count,
        checkpoint_seq: vec_sequence,
        min_lsn: 0,
        max_lsn: 0,
        payload_len: records.len() as u32,
        aux: level as u64,
    };
    page::seal(page, &h, salt);
}

/// Verify a level page (CRC, number, type, level, record count): the records it must hold are
/// `expected_count` of `record_len` bytes.
pub fn verify_level_page(p: &[u8], salt: u32, page_no: u64, level: usize, expected_count: u32, record_len: usize) -> Result<PageHeader, DecodeError> {
    let h = page::verify(p, salt, page_no, p.len())?;
    if h.page_type != page_type(level) || h.aux != level as u64 {
        return Err(DecodeError::new(0, format!("page is a {} page of level {}, not of graph level {level}", h.page_type.name(), h.aux)));
    }
    if h.count != expected_count || h.payload_len as usize != expected_count as usize * record_len {
        return Err(DecodeError::new(20, format!("page holds {} records, the header says {expected_count}", h.count)));
    }
    Ok(h)
}

/// Check one record's numbers: `count` at most `max`, every neighbour below `bound`, and (for
/// upper levels) `node` below `node_bound` and `down` below `down_bound`. `rec` is the record as
/// u32s.
pub fn check_record(rec: &[u32], level: usize, max: u16, bound: u32, node_bound: u64, down_bound: u32) -> Result<(), DecodeError> {
    let (head, nbr_at) = if level == 0 { (1, 1) } else { (3, 3) };
    if rec.len() < head {
        return Err(DecodeError::new(0, "graph record is truncated"));
    }
    let count = rec[head - 1] as usize;
    if count > usize::from(max) || nbr_at + count > rec.len() {
        return Err(DecodeError::new(4 * (head - 1), format!("record has {count} neighbours, at most {max} fit")));
    }
    if level > 0 && (u64::from(rec[0]) >= node_bound || rec[1] >= down_bound) {
        return Err(DecodeError::new(0, "record names a node or a lower record that does not exist"));
    }
    if let Some(i) = rec[nbr_at..nbr_at + count].iter().position(|&n| n >= bound) {
        return Err(DecodeError::new(4 * (nbr_at + i), format!("neighbour {} is not a record of level {level}", rec[nbr_at + i])));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_header() -> impl Strategy<Value = GraphHeader> {
        (any::<u32>(), any::<[u8; 16]>(), any::<u32>(), 1u32..2000, 0u8..3, 2u16..64, 0u32..100_000, 0usize..5, any::<u64>(), 1u32..5000).prop_map(
            |(salt, uuid, vsalt, dim, metric, m, nodes, top, seq, qcap)| {
                let page_size = 65536u32;
                let m0 = 2 * m;
                let mut levels = Vec::new();
                let mut next = 1u64;
                let mut records = nodes;
                for l in 0..=top {
                    let per = per_page(page_size as usize, record_len(l, m, m0));
                    let pages = (records as usize).div_ceil(per) as u32;
                    levels.push(LevelInfo { first_page: next, records, pages });
                    next += u64::from(pages);
                    records /= 16;
                }
                let entry = if levels[top].records > 0 { levels[top].records - 1 } else { 0 };
                GraphHeader {
                    graph_salt: salt,
                    store_uuid: uuid,
                    vec_salt: vsalt,
                    dimension: dim,
                    metric: [Metric::Cosine, Metric::Dot, Metric::L2][metric as usize],
                    page_size,
                    qcap,
                    m,
                    m0,
                    ef_construction: 200,
                    entry,
                    node_bound: u64::from(nodes),
                    node_count: u64::from(nodes) / 2 * u64::from(levels[top].records > 0),
                    vec_sequence: seq,
                    page_count: next,
                    levels,
                    est_recall: 0.95,
                    est_sample: 64,
                    est_ef: 64,
                }
            },
        )
    }

    proptest! {
        #[test]
        fn header_round_trips(h in arb_header()) {
            prop_assert_eq!(GraphHeader::decode(&h.encode()).expect("decodes"), h);
        }

        #[test]
        fn any_bit_flip_in_the_header_is_detected(h in arb_header(), bit in 0usize..(LEN * 8)) {
            let mut b = h.encode();
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(GraphHeader::decode(&b).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = GraphHeader::decode(&b);
        }

        #[test]
        fn arbitrary_records_never_panic(rec in proptest::collection::vec(any::<u32>(), 0..40), level in 0usize..3, bound in any::<u32>()) {
            let _ = check_record(&rec, level, 16, bound, u64::from(bound), bound);
        }

        #[test]
        fn level_pages_round_trip(level in 0usize..3, count in 0u32..100, salt in any::<u32>(), page_no in 1u64..1000, flip in any::<Option<usize>>()) {
            let rl = record_len(level, 16, 32);
            let records: Vec<u8> = (0..count as usize * rl).map(|i| (i * 7) as u8).collect();
            let mut p = vec![0u8; 65536];
            encode_level_page(&mut p, page_no, level, count, &records, 9, salt);
            prop_assert!(verify_level_page(&p, salt, page_no, level, count, rl).is_ok());
            prop_assert!(verify_level_page(&p, salt, page_no, level + 1, count, rl).is_err());
            if let Some(f) = flip {
                let bit = f % (p.len() * 8);
                p[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(verify_level_page(&p, salt, page_no, level, count, rl).is_err());
            }
        }
    }

    #[test]
    fn records_out_of_range_are_refused() {
        assert!(check_record(&[2, 5, 6], 0, 32, 10, 10, 10).is_ok());
        assert!(check_record(&[2, 5, 10], 0, 32, 10, 10, 10).is_err());
        assert!(check_record(&[33], 0, 32, 10, 10, 10).is_err());
        assert!(check_record(&[3, 1, 1, 0], 1, 16, 4, 10, 10).is_ok());
        assert!(check_record(&[11, 1, 0], 1, 16, 4, 10, 10).is_err());
        assert!(check_record(&[3, 10, 0], 1, 16, 4, 10, 10).is_err());
    }
}
