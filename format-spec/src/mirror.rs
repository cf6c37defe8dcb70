//! The trailer of every page of the SQLite mirror's main file (FORMAT.md §6.1): 8 bytes in the
//! page's reserved space holding the page number and a CRC-32 of the page.
//!
//! ```
//! use memento_format::mirror::{check, seal, TRAILER_LEN};
//! let mut page = vec![7u8; 4096];
//! seal(&mut page, 3).unwrap();
//! assert!(check(&page, 3).is_ok());
//! assert!(check(&page, 4).is_err()); // the page of another place
//! page[100] ^= 0x10;
//! assert!(check(&page, 3).is_err());
//! # let _ = TRAILER_LEN;
//! ```

use crate::DecodeError;

/// The trailer's fields, from the start of the trailer.
pub mod trailer {
    crate::layout!(8;
        page_no: 4,
        crc: 4,
    );
}

/// Bytes at the end of each page that SQLite leaves to the trailer ("reserved bytes").
pub const TRAILER_LEN: usize = trailer::LEN;

/// The smallest and largest SQLite page sizes.
pub const MIN_PAGE: usize = 512;
/// See [`MIN_PAGE`].
pub const MAX_PAGE: usize = 65536;

/// Whether `n` is an SQLite page size (a power of two from 512 to 65,536).
pub fn is_page_size(n: usize) -> bool {
    n.is_power_of_two() && (MIN_PAGE..=MAX_PAGE).contains(&n)
}

fn trailer_crc(page: &[u8]) -> u32 {
    let body = page.len() - TRAILER_LEN;
    crate::crc32(0, &[&page[..body + trailer::crc.offset]])
}

/// Writes the trailer of page number `page_no` into the last 8 bytes of `page`. An error if
/// `page` is not a page size long.
pub fn seal(page: &mut [u8], page_no: u32) -> Result<(), DecodeError> {
    if !is_page_size(page.len()) {
        return Err(DecodeError::new(0, format!("{} bytes is not an SQLite page size", page.len())));
    }
    let t = page.len() - TRAILER_LEN;
    trailer::page_no.put_u32(&mut page[t..], page_no);
    let crc = trailer_crc(page);
    trailer::crc.put_u32(&mut page[t..], crc);
    Ok(())
}

/// Verifies the trailer of `page`, read as page number `page_no`: its CRC, then its page
/// number. Offsets in the error are from the start of `page`.
pub fn check(page: &[u8], page_no: u32) -> Result<(), DecodeError> {
    if !is_page_size(page.len()) {
        return Err(DecodeError::new(0, format!("{} bytes is not an SQLite page size", page.len())));
    }
    let t = page.len() - TRAILER_LEN;
    let stored = trailer::crc.get_u32(&page[t..]);
    let crc = trailer_crc(page);
    if stored != crc {
        return Err(DecodeError::new(t + trailer::crc.offset, format!("checksum mismatch (stored {stored:#010x}, computed {crc:#010x})")));
    }
    let found = trailer::page_no.get_u32(&page[t..]);
    if found != page_no {
        return Err(DecodeError::new(t + trailer::page_no.offset, format!("the page holds the trailer of page {found}, not {page_no}")));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fixed values (computed independently with Python's zlib.crc32), so that a change of the
    /// checksum's definition is seen.
    #[test]
    fn golden() {
        let mut page: Vec<u8> = (0..512u32).map(|i| (i * 7 % 251) as u8).collect();
        seal(&mut page, 2).unwrap();
        assert_eq!(&page[504..], &[2, 0, 0, 0, 0x67, 0x60, 0x1e, 0x18]);
        let zeros = {
            let mut p = vec![0u8; 4096];
            seal(&mut p, 1).unwrap();
            p
        };
        assert_eq!(&zeros[4088..], &[1, 0, 0, 0, 0xec, 0x63, 0x87, 0xd8]);
    }

    #[test]
    fn sizes() {
        for n in [0, 8, 511, 513, 1000, 131072] {
            assert!(seal(&mut vec![0; n], 1).is_err(), "{n}");
            assert!(check(&vec![0; n], 1).is_err(), "{n}");
        }
        let mut p = vec![0u8; 512];
        // An all-zero page (never sealed) does not pass.
        assert!(check(&p, 1).is_err());
        seal(&mut p, 1).unwrap();
        assert!(check(&p, 1).is_ok());
    }

    proptest! {
        #[test]
        fn sealed_pages_check(shift in 9u32..=16, seed in any::<u64>(), page_no in any::<u32>()) {
            let n = 1usize << shift;
            let mut page: Vec<u8> = (0..n).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 24) as u8).collect();
            seal(&mut page, page_no).unwrap();
            prop_assert!(check(&page, page_no).is_ok());
            prop_assert!(check(&page, page_no.wrapping_add(1)).is_err());
        }

        /// Every single-bit flip anywhere in a sealed page is caught.
        #[test]
        fn every_flip_is_caught(seed in any::<u64>(), page_no in any::<u32>(), at in 0usize..1024, bit in 0u8..8) {
            let mut page: Vec<u8> = (0..1024).map(|i| (seed.rotate_left(i as u32 % 64) >> 8) as u8).collect();
            seal(&mut page, page_no).unwrap();
            page[at] ^= 1 << bit;
            prop_assert!(check(&page, page_no).is_err());
        }

        /// Arbitrary bytes never panic the checker.
        #[test]
        fn check_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048), page_no in any::<u32>()) {
            let _ = check(&bytes, page_no);
        }
    }
}
