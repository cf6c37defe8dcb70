//! Page checksums for the mirror: an SQLite VFS shim over the default one that keeps an
//! 8-byte trailer (FORMAT.md §6.1, [`memento_format::mirror`]) at the end of every page of a
//! main database file.
//!
//! The shim is registered once, by the name [`VFS_NAME`], and used only by connections that
//! ask for it (the mirror's). It changes nothing for the other files a connection opens:
//! the `-wal`, `-shm`, journals and temporary files are opened by the default VFS itself,
//! into the same memory (the shim's file size is the default's plus its own header, so either
//! fits). For a main database file it wraps the default VFS's file:
//!
//! - `xWrite` of a whole page (a power of two from 512 to 65,536 bytes at an offset that is a
//!   multiple of it) writes a copy of the page with its trailer sealed; SQLite leaves those 8
//!   bytes alone, because the mirror is created with 8 reserved bytes per page
//!   ([`reserve_trailer`]). Other writes pass through (the page they belong to then fails its
//!   next check, which is damage, never a wrong answer).
//! - `xRead` of a whole page checks the trailer and returns `SQLITE_IOERR_DATA` if it fails.
//!   Reads of part of a page (the 100-byte header SQLite reads at open, the 16-byte change
//!   counter in WAL mode) pass through: SQLite reads the whole page 1 before it reads any table.
//!   A short read (past the end of the file) passes through as SQLite's `SQLITE_IOERR_SHORT_READ`.
//! - Memory-mapped reads are refused (`xFetch` gives no pointer), so every read is an `xRead`.
//!
//! Pages checkpointed from the `-wal` file into the main file are written by `xWrite` and get
//! their trailer then; in the `-wal` file, SQLite's frame checksums cover them.
//!
//! The shim keeps no state about the file: a page is known by the size and alignment of the
//! access, and its number by its offset. So every whole-page read is checked whatever the
//! header's reserved-bytes field says (a file written without trailers, such as a mirror of
//! schema version 2, fails at its first page read: damage, rebuilt). A `VACUUM` keeps the
//! reserved bytes and so the trailers. A page size change is not supported: SQLite's copy into
//! the new layout writes chunks of the old page size, which the shim seals as pages of that
//! size, so the result fails its checks (damage, rebuilt; never an answer). The engine never
//! changes the mirror's page size (SQLite's default, 4096).

use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use memento_format::mirror::{check, is_page_size, seal, TRAILER_LEN};
use rusqlite::ffi;

/// The name under which the shim is registered.
pub const VFS_NAME: &CStr = c"memento-trailer";

/// The shim's part of an open main database file; the default VFS's file follows it at
/// [`REAL_OFFSET`].
#[repr(C)]
struct TrailerFile {
    base: ffi::sqlite3_file,
}

/// Where the default VFS's file begins inside ours (16-byte aligned, more than any field of it needs).
const REAL_OFFSET: usize = std::mem::size_of::<TrailerFile>().next_multiple_of(16);

/// The file of the default VFS inside ours.
///
/// # Safety
/// `file` points to an allocation of the shim's `szOsFile` bytes.
unsafe fn real(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: the allocation is REAL_OFFSET + the default VFS's szOsFile bytes long (see
    // `register`), so the offset stays inside it.
    unsafe { file.cast::<u8>().add(REAL_OFFSET).cast::<ffi::sqlite3_file>() }
}

/// The io methods of the default VFS's file.
///
/// # Safety
/// `file` is one of the shim's open main database files.
unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: an open file of the default VFS has non-null methods that live as long as the VFS
    // (static tables in SQLite).
    unsafe { &*(*real(file)).pMethods }
}

/// Registers the shim once; later calls return the first call's result.
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED.get_or_init(register_once).clone()
}

fn register_once() -> Result<(), String> {
    // SAFETY: sqlite3_vfs_find takes a null name to mean the default VFS; it initialises SQLite
    // if needed and returns a pointer that stays valid until that VFS is unregistered (never).
    let default = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if default.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    // SAFETY: `default` is a valid, registered VFS (checked non-null above); it is only read.
    let mut vfs: ffi::sqlite3_vfs = unsafe { *default };
    let real_size = usize::try_from(vfs.szOsFile).map_err(|_| "the default VFS reports a negative file size".to_string())?;
    vfs.szOsFile = c_int::try_from(REAL_OFFSET + real_size).map_err(|_| "the default VFS's file is too large".to_string())?;
    vfs.pNext = ptr::null_mut();
    vfs.zName = VFS_NAME.as_ptr();
    // The default VFS, for `x_open`. The other methods are the default VFS's own: of them,
    // only its xOpen reads pAppData (the unix VFS's locking-style finder), and ours calls that
    // one with the default VFS itself.
    vfs.pAppData = default.cast::<c_void>();
    vfs.xOpen = Some(x_open);
    let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
    // SAFETY: `vfs` is a complete VFS object that lives for the rest of the process (leaked);
    // 0: it does not become the default.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    if rc != ffi::SQLITE_OK {
        return Err(format!("registering the mirror's VFS failed (SQLite error {rc})"));
    }
    Ok(())
}

/// Asks SQLite to reserve [`TRAILER_LEN`] bytes at the end of every page of the main
/// database of `conn`. Takes effect only on a database that has no pages yet.
pub fn reserve_trailer(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut n: c_int = TRAILER_LEN as c_int;
    // SAFETY: the handle is the live connection's; SQLITE_FCNTL_RESERVE_BYTES takes a pointer
    // to an int, which it reads and overwrites, and `n` outlives the call.
    let rc = unsafe { ffi::sqlite3_file_control(conn.handle(), c"main".as_ptr(), ffi::SQLITE_FCNTL_RESERVE_BYTES, (&raw mut n).cast::<c_void>()) };
    if rc != ffi::SQLITE_OK {
        return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some("reserving the page trailer".into())));
    }
    Ok(())
}

/// The page number of a whole-page access of `amount` bytes at `offset`, or `None` if the
/// access is not one.
fn page_of(amount: c_int, offset: ffi::sqlite3_int64) -> Option<(usize, u32)> {
    let n = usize::try_from(amount).ok().filter(|&n| is_page_size(n))?;
    let off = u64::try_from(offset).ok()?;
    if off % n as u64 != 0 {
        return None;
    }
    let page_no = u32::try_from(off / n as u64 + 1).ok()?;
    Some((n, page_no))
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite calls xOpen with our VFS, whose pAppData is the default VFS (`register_once`).
    let default = unsafe { (*vfs).pAppData.cast::<ffi::sqlite3_vfs>() };
    // SAFETY: the default VFS's xOpen is always set.
    let Some(open) = (unsafe { (*default).xOpen }) else {
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
        // SAFETY: `file` is szOsFile bytes, more than the default VFS's file needs; the
        // default VFS then owns it, with its own methods.
        return unsafe { open(default, name, file, flags, out_flags) };
    }
    // SAFETY: `file` is ours to fill (szOsFile bytes); null methods tell SQLite not to call
    // xClose if the open fails.
    unsafe { (*file).pMethods = ptr::null() };
    // SAFETY: the default VFS's file lies inside ours (see `real`).
    let rc = unsafe { open(default, name, real(file), flags, out_flags) };
    if rc == ffi::SQLITE_OK {
        // SAFETY: as above; METHODS is static.
        unsafe { (*file).pMethods = &METHODS };
    }
    rc
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    // Version 2: shared memory (WAL mode) but no xFetch, so no memory-mapped reads.
    iVersion: 2,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: None,
    xUnfetch: None,
};

/// Calls the default VFS's method `$m` on the file inside ours, or returns `$missing`.
macro_rules! forward {
    ($file:expr, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: SQLite calls our methods only on files `x_open` opened as main databases,
        // whose default-VFS file is open inside them until xClose.
        match unsafe { methods($file) }.$m {
            // SAFETY: the default VFS's own method, on its own file, with SQLite's arguments.
            Some(f) => unsafe { f(real($file) $(, $arg)*) },
            None => $missing,
        }
    }};
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xClose, ffi::SQLITE_OK)
}

unsafe extern "C" fn x_read(file: *mut ffi::sqlite3_file, buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int {
    let rc = forward!(file, xRead, ffi::SQLITE_IOERR_READ, buf, amount, offset);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let Some((n, page_no)) = page_of(amount, offset) else {
        return rc;
    };
    // SAFETY: SQLite gave a buffer of `amount` (= n) bytes, which the read just filled.
    let page = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), n) };
    match check(page, page_no) {
        Ok(()) => ffi::SQLITE_OK,
        Err(_) => ffi::SQLITE_IOERR_DATA,
    }
}

unsafe extern "C" fn x_write(file: *mut ffi::sqlite3_file, buf: *const c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int {
    let Some((n, page_no)) = page_of(amount, offset) else {
        return forward!(file, xWrite, ffi::SQLITE_IOERR_WRITE, buf, amount, offset);
    };
    // SAFETY: SQLite gave a buffer of `amount` (= n) bytes; it is only read (copied).
    let mut page = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), n) }.to_vec();
    if seal(&mut page, page_no).is_err() {
        return ffi::SQLITE_IOERR_WRITE; // not reached: `page_of` checked the size
    }
    forward!(file, xWrite, ffi::SQLITE_IOERR_WRITE, page.as_ptr().cast::<c_void>(), amount, offset)
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    forward!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    forward!(file, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut ffi::sqlite3_int64) -> c_int {
    forward!(file, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level)
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    forward!(file, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, out)
}

unsafe extern "C" fn x_file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    forward!(file, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xSectorSize, 4096)
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xDeviceCharacteristics, 0)
}

unsafe extern "C" fn x_shm_map(file: *mut ffi::sqlite3_file, region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int {
    forward!(file, xShmMap, ffi::SQLITE_IOERR_SHMMAP, region, size, extend, out)
}

unsafe extern "C" fn x_shm_lock(file: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    forward!(file, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    forward!(file, xShmBarrier, ())
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(file, xShmUnmap, ffi::SQLITE_OK, delete)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn whole_pages_only() {
        assert_eq!(page_of(4096, 0), Some((4096, 1)));
        assert_eq!(page_of(4096, 8192), Some((4096, 3)));
        assert_eq!(page_of(100, 0), None);
        assert_eq!(page_of(16, 24), None);
        assert_eq!(page_of(4096, 100), None);
        assert_eq!(page_of(1000, 0), None);
        assert_eq!(page_of(-1, 0), None);
        assert_eq!(page_of(4096, -4096), None);
    }
}
