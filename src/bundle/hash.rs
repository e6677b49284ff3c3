//! Hashing bundle members: in parallel across files (rayon), streaming within a file, with
//! memory that does not grow with file size.
//!
//! Small files are read into one buffer. Files of [`MMAP_MIN`] bytes or more are mapped and
//! hashed window by window with blake3's multi-threaded `update_rayon`; after each window the
//! pages are dropped from this process (`MADV_DONTNEED`; they stay in the page cache), so
//! the resident set stays near one window whatever the file size. This is as fast as `b3sum`
//! (which maps whole files) without its resident set growing to the file size.

use std::fs::File;
use std::io;

use rayon::prelude::*;

/// Files at least this large are hashed through a memory map.
pub(crate) const MMAP_MIN: u64 = 1 << 20;
/// Bytes hashed per window of a mapped file.
const WINDOW: usize = 16 << 20;

/// The result of hashing one open file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hashed {
    /// Bytes hashed.
    pub size: u64,
    /// blake3, hex.
    pub blake3: String,
}

/// Hash an open regular file whose `fstat` size is `size`. The file must not change while it
/// is hashed; a size that changes underneath is reported as an error.
pub(crate) fn hash_open(file: &File, size: u64) -> io::Result<Hashed> {
    let mut hasher = blake3::Hasher::new();
    let taken = if size >= MMAP_MIN {
        hash_mapped(file, size, &mut hasher)?;
        file.metadata()?.len()
    } else {
        hash_read(file, size, &mut hasher)?
    };
    if taken != size {
        return Err(io::Error::other(format!(
            "the file changed while it was hashed ({size} bytes, then {taken})"
        )));
    }
    Ok(Hashed {
        size,
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

/// One file to hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job<'a> {
    /// Path relative to the bundle directory.
    pub rel: &'a str,
    /// If set and the open file's size differs, it is not hashed: the result has that size
    /// and an empty digest (sizes are compared before hashing).
    pub expect_size: Option<u64>,
}

impl<'a> Job<'a> {
    /// Hash `rel` whatever its size.
    pub fn any(rel: &'a str) -> Self {
        Self {
            rel,
            expect_size: None,
        }
    }
}

/// Open each job's file beneath `dir` (no symlinks anywhere on the path), check it is a
/// regular file and hash it; all in parallel, results in the order of `jobs`. With
/// `read_only`, a file that is still writable is made read-only (0444) through the same
/// descriptor (files written through the store are born read-only).
pub(crate) fn hash_members(
    dir: &File,
    jobs: &[Job<'_>],
    read_only: bool,
) -> Vec<io::Result<Hashed>> {
    use std::os::unix::fs::PermissionsExt;
    jobs.par_iter()
        .map(|job| {
            let f = super::fsio::open_beneath(dir, job.rel)?;
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Err(io::Error::other("not a regular file"));
            }
            if job.expect_size.is_some_and(|s| s != meta.len()) {
                return Ok(Hashed {
                    size: meta.len(),
                    blake3: String::new(),
                });
            }
            let h = hash_open(&f, meta.len())?;
            if read_only && meta.permissions().mode() & 0o7777 != 0o444 {
                f.set_permissions(std::fs::Permissions::from_mode(0o444))?;
            }
            Ok(h)
        })
        .collect()
}

fn hash_read(file: &File, size: u64, hasher: &mut blake3::Hasher) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    // Positional reads (independent of the file offset) into one buffer of at most MMAP_MIN
    // bytes, plus one byte to notice a file that grew. A regular file's read returns less
    // than asked only at its end, so reaching `size` with a short read means the file has
    // exactly `size` bytes: one read per file.
    // The buffer is per thread and reused: no allocation or page faults per file.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let want = usize::try_from(size.min(MMAP_MIN)).unwrap_or(0);
    BUF.with_borrow_mut(|buf| {
        if buf.len() < want + 1 {
            buf.resize(want + 1, 0);
        }
        let buf = &mut buf[..=want];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if got == want {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        hasher.update(&buf[..got]);
        Ok(got as u64)
    })
}

fn hash_mapped(file: &File, size: u64, hasher: &mut blake3::Hasher) -> io::Result<u64> {
    let len = usize::try_from(size)
        .map_err(|_| io::Error::other("the file is too large to map on this platform"))?;
    // SAFETY: the mapping is read-only and private to this function. If another process
    // truncates the file while it is mapped, reads past the new end raise SIGBUS (as with
    // b3sum); a bundle being hashed is either ours (staging, under the lock) or sealed
    // read-only evidence.
    let Ok(map) = (unsafe { memmap2::MmapOptions::new().len(len).map(file) }) else {
        // A filesystem that cannot map: stream through one window-sized buffer.
        return hash_streamed(file, hasher);
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    let mut off = 0;
    while off < len {
        let end = (off + WINDOW).min(len);
        hasher.update_rayon(&map[off..end]);
        // SAFETY: MADV_DONTNEED on a read-only shared file mapping only drops our page-table
        // entries; the window is not touched again, and a later access would re-read the
        // same file pages.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, end - off)
        };
        off = end;
    }
    Ok(size)
}

fn hash_streamed(file: &File, hasher: &mut blake3::Hasher) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; WINDOW];
    let mut off = 0u64;
    loop {
        match file.read_at(&mut buf, off) {
            Ok(0) => return Ok(off),
            Ok(n) => {
                hasher.update_rayon(&buf[..n]);
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn hash_of(bytes: &[u8]) -> Hashed {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        hash_open(&f, bytes.len() as u64).unwrap()
    }

    #[test]
    fn small_and_mapped_files_hash_like_blake3() {
        for len in [0usize, 1, 1023, 1 << 20, (1 << 20) + 7, (16 << 20) + 4099] {
            let data: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i * 31 % 251).unwrap())
                .collect();
            let h = hash_of(&data);
            assert_eq!(h.size, len as u64);
            assert_eq!(
                h.blake3,
                blake3::hash(&data).to_hex().to_string(),
                "len {len}"
            );
        }
    }

    #[test]
    fn streaming_fallback_hashes_like_blake3() {
        let data: Vec<u8> = (0..(WINDOW * 2 + 17))
            .map(|i| u8::try_from(i % 253).unwrap())
            .collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let mut h = blake3::Hasher::new();
        assert_eq!(hash_streamed(&f, &mut h).unwrap(), data.len() as u64);
        assert_eq!(h.finalize(), blake3::hash(&data));
    }

    #[test]
    fn a_size_that_disagrees_with_the_file_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        assert!(hash_open(&f, 2).is_err(), "grew");
        assert!(hash_open(&f, 4).is_err(), "shrank");
    }
}
