//! The decoders of the on-disk format (crate `memento-format`) on arbitrary bytes.

use memento_format::page::{self, PageHeader, PageType, QuantLayout, VectorLayout};
use memento_format::superblock::{self, Superblock};
use memento_format::wal::{self, Payload, Scan};

use crate::Bytes;

/// The page size the page target uses (the smallest the format allows).
const PAGE_SIZE: usize = superblock::MIN_PAGE_SIZE as usize;

/// Decode a superblock copy from the bytes: never a panic; an accepted copy re-encodes to bytes
/// that decode to the same value, and `pick_current` prefers the higher sequence.
pub fn superblock(data: &[u8]) {
    let a = Superblock::decode(data);
    if let Ok(sb) = &a {
        let again = Superblock::decode(&sb.encode()).expect("a superblock the decoder accepted must survive its own encoding");
        assert_eq!(&again, sb, "encode/decode changed the superblock");
    }
    // The second copy: the input shifted by one byte (often a failure, sometimes not).
    let b = Superblock::decode(data.get(1..).unwrap_or(&[]));
    let seqs = (a.as_ref().ok().map(|s| s.sequence), b.as_ref().ok().map(|s| s.sequence));
    match (superblock::pick_current(a, b), seqs) {
        (None, (None, None)) => {}
        (Some((cur, _)), (sa, sb)) => assert_eq!(Some(cur.sequence), sa.max(sb), "pick_current must take the higher sequence"),
        (None, _) => panic!("pick_current found no copy although one decoded"),
    }
}

/// Decode a page from the bytes. The input is: salt (4 bytes), the page number the caller
/// expects (1 byte), the store's dimension (2 bytes), a mode byte, then the page's bytes (padded
/// with zeros to one or two page units). Mode bit 0: seal the page with a valid CRC first (the
/// header is rewritten with the expected page number and span), so that the body decoders are
/// reached; it must then verify. Mode bit 1: two page units.
pub fn page(data: &[u8]) {
    let mut b = Bytes::new(data);
    let salt = b.u32();
    let page_no = u64::from(b.u8());
    let dim = usize::from(b.u16() % 1024) + 1;
    let mode = b.u8();
    let span: u32 = if mode & 2 != 0 { 2 } else { 1 };
    let mut buf = vec![0u8; PAGE_SIZE * span as usize];
    let body = b.rest();
    let n = body.len().min(buf.len());
    buf[..n].copy_from_slice(&body[..n]);

    let decoded = PageHeader::decode(&buf);
    if mode & 1 != 0 {
        if let Ok(h) = decoded {
            let h = PageHeader { page_no, span, ..h };
            page::seal(&mut buf, &h, salt);
            // Sealed, its checksum is right; verify may still refuse it for its header's
            // other fields (a payload longer than the page), but never for the checksum.
            match page::verify(&buf, salt, page_no, PAGE_SIZE) {
                Ok(v) => assert_eq!(v, h, "verify must return the header that was sealed"),
                Err(e) => assert_ne!(e.offset, page::header::crc.offset, "a freshly sealed page failed its checksum: {e:?}"),
            }
        }
    }
    let Ok(h) = page::verify(&buf, salt, page_no, PAGE_SIZE) else {
        return;
    };
    // Every decoder the engine may run on a verified page, whatever its type says: each must be
    // total, and what it accepts must be readable without going out of bounds.
    let _ = page::record_entries(&buf, &h);
    let _ = page::tombstones(&buf, &h);
    if let Ok(entries) = page::directory(&buf, &h, u64::from(b.u8()) + 8) {
        assert_eq!(entries.len(), h.count as usize);
    }
    if let Some(layout) = VectorLayout::new(dim, PAGE_SIZE) {
        if layout.check(&buf, &h).is_ok() {
            let count = h.count as usize;
            for i in 0..count {
                let _ = layout.slot(&buf, i);
            }
            assert_eq!(layout.vector_bytes(&buf, count).len(), count * dim * 4);
        }
    }
    if let Some(layout) = QuantLayout::new(dim, PAGE_SIZE) {
        if layout.check(&buf, &h).is_ok() {
            let count = h.count as usize;
            for i in 0..count {
                let _ = layout.slot(&buf, i);
            }
            assert_eq!(layout.params_owned(&buf, count).len(), count);
            assert_eq!(layout.codes(&buf, count).len(), count * dim);
        }
    }
    let _ = PageType::from_code(h.page_type.code()).expect("a decoded page type has a code");
}

/// The WAL decoders. The input is: salt (4 bytes), dimension (1 byte), a mode byte, then:
/// - mode even: raw WAL bytes. The header decoder and the record scanner run over them; the
///   scanner must always move forward and stay inside the buffer.
/// - mode odd: a list of records built from the bytes. Each is encoded, must scan back as
///   itself, every truncation of it must be `Incomplete`, and a byte flipped inside it must
///   never scan as a different record.
pub fn wal(data: &[u8]) {
    let mut b = Bytes::new(data);
    let salt = b.u32();
    let dim = usize::from(b.u8() % 16) + 1;
    let mode = b.u8();
    if mode.is_multiple_of(2) {
        let raw = b.rest();
        let _ = wal::WalHeader::decode(raw);
        let mut at = raw.len().min(wal::HEADER_LEN);
        while at < raw.len() {
            match wal::read_record(&raw[at..], salt, dim) {
                Scan::Record { next, .. } => {
                    assert!(next > 0 && next % 8 == 0, "a record's next offset must move forward by a multiple of 8");
                    at += next;
                }
                Scan::Incomplete | Scan::Bad(_) => break,
            }
        }
        return;
    }
    let mut lsn = u64::from(b.u32());
    while !b.is_empty() {
        let owned = OwnedPayload::from_bytes(&mut b, dim);
        let p = owned.payload();
        let mut out = Vec::new();
        wal::encode_record(&mut out, salt, lsn, &p);
        assert_eq!(out.len() % 8, 0, "records are padded to 8 bytes");
        match wal::read_record(&out, salt, dim) {
            Scan::Record { lsn: l, payload, next } => {
                assert_eq!((l, next), (lsn, out.len()));
                assert_eq!(payload, p, "a record must scan back as what was encoded");
            }
            other => panic!("an encoded record did not scan back: {other:?}"),
        }
        let len = p.record_len();
        let cut = usize::from(b.u16()) % len;
        assert!(matches!(wal::read_record(&out[..cut], salt, dim), Scan::Incomplete), "a record cut at {cut} of {len} bytes must be incomplete");
        let flip = usize::from(b.u16()) % out.len();
        let bit = 1u8 << (b.u8() % 8);
        out[flip] ^= bit;
        if let Scan::Record { payload, .. } = wal::read_record(&out, salt, dim) {
            // Only the padding after the record is outside the checksum.
            assert!(flip >= len && payload == p, "a flipped bit at {flip} of a {len}-byte record scanned as a record");
        }
        lsn = lsn.wrapping_add(1);
    }
}

/// A WAL payload whose strings and bytes it owns, built from fuzzer bytes.
enum OwnedPayload {
    Put { slot: u64, id: String, text: Option<String>, metadata: Option<String>, vector: Vec<u8> },
    Delete { slot: u64, id: String },
    Update { slot: u64, text: Option<Option<String>>, metadata: Option<Option<String>> },
    Commit { first_lsn: u64, n_records: u32, synced_through: u64 },
}

fn string(b: &mut Bytes<'_>, max: usize) -> String {
    let n = usize::from(b.u8()) % (max + 1);
    String::from_utf8_lossy(b.take(n)).into_owned()
}

fn opt_string(b: &mut Bytes<'_>) -> Option<String> {
    (b.u8() % 2 == 1).then(|| string(b, 40))
}

impl OwnedPayload {
    fn from_bytes(b: &mut Bytes<'_>, dim: usize) -> OwnedPayload {
        match b.u8() % 4 {
            0 => {
                let slot = b.u64();
                let mut id = string(b, 32);
                if id.is_empty() {
                    id.push('x');
                }
                let text = opt_string(b);
                let metadata = opt_string(b);
                let vector = (0..dim).flat_map(|_| f32::from_bits(b.u32()).to_le_bytes()).collect();
                OwnedPayload::Put { slot, id, text, metadata, vector }
            }
            1 => OwnedPayload::Delete { slot: b.u64(), id: string(b, 32) },
            2 => {
                let slot = b.u64();
                let flags = b.u8();
                let mut field = |set: bool| set.then(|| opt_string(b));
                let text = field(flags & 1 != 0);
                // An update changes at least one field.
                let metadata = field(flags & 2 != 0 || flags & 1 == 0);
                OwnedPayload::Update { slot, text, metadata }
            }
            _ => OwnedPayload::Commit { first_lsn: b.u64(), n_records: b.u32(), synced_through: b.u64() },
        }
    }

    fn payload(&self) -> Payload<'_> {
        match self {
            OwnedPayload::Put { slot, id, text, metadata, vector } => {
                Payload::Put { slot: *slot, id, text: text.as_deref(), metadata: metadata.as_deref(), vector }
            }
            OwnedPayload::Delete { slot, id } => Payload::Delete { slot: *slot, id },
            OwnedPayload::Update { slot, text, metadata } => {
                Payload::Update { slot: *slot, text: text.as_ref().map(Option::as_deref), metadata: metadata.as_ref().map(Option::as_deref) }
            }
            OwnedPayload::Commit { first_lsn, n_records, synced_through } => {
                Payload::Commit { first_lsn: *first_lsn, n_records: *n_records, synced_through: *synced_through }
            }
        }
    }
}

/// Check a mirror page trailer (FORMAT.md §6.1) on arbitrary bytes. The input is: the page
/// number (4 bytes), a bit position (2 bytes), then the page. Never a panic; the page sealed
/// as that number passes `check` for that number only, and with any one bit flipped fails.
pub fn mirror_trailer(data: &[u8]) {
    use memento_format::mirror;
    let mut b = Bytes::new(data);
    let page_no = b.u32();
    let bit = usize::from(b.u16());
    let body = b.rest();
    let _ = mirror::check(body, page_no);
    let size = body.len().clamp(mirror::MIN_PAGE, mirror::MAX_PAGE).next_power_of_two().min(mirror::MAX_PAGE);
    let mut page = vec![0u8; size];
    let n = body.len().min(size);
    page[..n].copy_from_slice(&body[..n]);
    mirror::seal(&mut page, page_no).expect("a page-sized buffer seals");
    assert!(mirror::check(&page, page_no).is_ok(), "a sealed page failed its check");
    assert!(mirror::check(&page, page_no.wrapping_add(1)).is_err(), "a sealed page passed as another page");
    let at = bit % (size * 8);
    page[at / 8] ^= 1 << (at % 8);
    assert!(mirror::check(&page, page_no).is_err(), "a flipped bit at {at} passed the check");
}
