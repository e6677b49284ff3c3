//! Hashing bundle members: in parallel across files (rayon), streaming within a file, with
//! memory that does not grow with file size.
//!
//! Small files are read into one (per-thread, reused) buffer. Files of [`MMAP_MIN`] bytes or
//! more are mapped and hashed as independent BLAKE3 subtrees of at most [`LEAF`] bytes, in
//! parallel (`blake3::hazmat`: each leaf's chaining value, merged along the tree's own shape,
//! so the result is the ordinary blake3 of the file). After a leaf is hashed its pages are
//! dropped from this process (`MADV_DONTNEED`; they stay in the page cache), so the resident
//! set stays near one leaf per thread whatever the file size. Threads take leaves as they
//! free up, so a thread the scheduler pauses delays only its own leaf, never the others (a
//! windowed `update_rayon` would wait for it at every window). This is as fast as `b3sum`
//! (which maps and hashes whole files) without its resident set growing to the file size.

use std::fs::File;
use std::io;

use rayon::prelude::*;

/// Files at least this large are hashed through a memory map.
pub(crate) const MMAP_MIN: u64 = 1 << 20;
/// Largest subtree of a mapped file hashed by one thread (a power of two, so leaves are
/// whole BLAKE3 subtrees). Its pages are resident until the leaf is hashed, so a thread's
/// share of the resident set is one leaf: 1 MiB (the size [`MMAP_MIN`] files are read in
/// one buffer anyway) keeps the seal of a large bundle from adding a leaf per thread to a
/// run's peak (8 MiB leaves added 16 MiB on 2 cores), and still hands each thread a
/// thousand BLAKE3 chunks at a time.
const LEAF: usize = 1 << 20;
/// Buffer size when a file cannot be mapped.
const WINDOW: usize = 16 << 20;

/// The result of hashing one open file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hashed {
    /// Bytes hashed.
    pub size: u64,
    /// blake3, hex.
    pub blake3: String,
    /// Permission bits (`st_mode & 0o7777`) of the open file, before any change.
    pub mode: u32,
    /// Hard links to the file (`st_nlink`).
    pub nlink: u64,
}

/// Hash an open regular file whose `fstat` size is `size`. The file must not change while it
/// is hashed; a size that changes underneath is reported as an error.
pub(crate) fn hash_open(file: &File, size: u64) -> io::Result<Hashed> {
    let (taken, hash) = if size >= MMAP_MIN {
        let hash = hash_mapped(file, size)?;
        (file.metadata()?.len(), hash)
    } else {
        let mut hasher = blake3::Hasher::new();
        let taken = hash_read(file, size, &mut hasher)?;
        (taken, hasher.finalize())
    };
    if taken != size {
        return Err(io::Error::other(format!(
            "the file changed while it was hashed ({size} bytes, then {taken})"
        )));
    }
    Ok(Hashed {
        size,
        blake3: hash.to_hex().to_string(),
        mode: 0,
        nlink: 0,
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
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    jobs.par_iter()
        .map(|job| {
            let f = super::fsio::open_beneath(dir, job.rel)?;
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Err(io::Error::other("not a regular file"));
            }
            let mode = meta.permissions().mode() & 0o7777;
            if job.expect_size.is_some_and(|s| s != meta.len()) {
                return Ok(Hashed {
                    size: meta.len(),
                    blake3: String::new(),
                    mode,
                    nlink: meta.nlink(),
                });
            }
            let mut h = hash_open(&f, meta.len())?;
            h.mode = mode;
            h.nlink = meta.nlink();
            if read_only && mode != 0o444 {
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

fn hash_mapped(file: &File, size: u64) -> io::Result<blake3::Hash> {
    use blake3::hazmat::{Mode, left_subtree_len, merge_subtrees_root};
    let len = usize::try_from(size)
        .map_err(|_| io::Error::other("the file is too large to map on this platform"))?;
    // SAFETY: the mapping is read-only and private to this function. If another process
    // truncates the file while it is mapped, reads past the new end raise SIGBUS (as with
    // b3sum); a bundle being hashed is either ours (staging, under the lock) or sealed
    // read-only evidence.
    let Ok(map) = (unsafe { memmap2::MmapOptions::new().len(len).map(file) }) else {
        // A filesystem that cannot map: stream through one window-sized buffer.
        let mut hasher = blake3::Hasher::new();
        hash_streamed(file, &mut hasher)?;
        return Ok(hasher.finalize());
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    if len <= LEAF {
        let hash = blake3::Hasher::new().update_rayon(&map).finalize();
        drop_pages(&map, 0, len);
        return Ok(hash);
    }
    // The root splits where BLAKE3's tree does; each side is a whole subtree.
    let split = usize::try_from(left_subtree_len(size)).unwrap_or(len);
    let (left, right) = rayon::join(
        || subtree_cv(&map, 0, split),
        || subtree_cv(&map, split, len),
    );
    Ok(merge_subtrees_root(&left, &right, Mode::Hash))
}

/// The chaining value of the subtree `map[start..end]`, which must be a node of the file's
/// BLAKE3 tree (the recursion from the root via `left_subtree_len` guarantees it).
fn subtree_cv(map: &memmap2::Mmap, start: usize, end: usize) -> blake3::hazmat::ChainingValue {
    use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_non_root};
    let n = end - start;
    if n <= LEAF {
        let cv = blake3::Hasher::new()
            .set_input_offset(start as u64)
            .update(&map[start..end])
            .finalize_non_root();
        drop_pages(map, start, n);
        return cv;
    }
    let split = start + usize::try_from(left_subtree_len(n as u64)).unwrap_or(n);
    let (left, right) = rayon::join(
        || subtree_cv(map, start, split),
        || subtree_cv(map, split, end),
    );
    merge_subtrees_non_root(&left, &right, Mode::Hash)
}

/// Drop `map[off..off + len]` from this process's page tables.
fn drop_pages(map: &memmap2::Mmap, off: usize, len: usize) {
    // SAFETY: MADV_DONTNEED on a read-only shared file mapping only drops our page-table
    // entries; the range is not touched again, and a later access would re-read the same
    // file pages.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len) };
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
        // Mapped sizes around the leaf size and odd tails exercise the subtree merging.
        for len in [
            0usize,
            1,
            1023,
            1 << 20,
            (1 << 20) + 7,
            LEAF - 1,
            LEAF,
            LEAF + 1,
            LEAF + 1024,
            3 * LEAF + 4099,
            (8 << 20) + 1,
            (16 << 20) + 4099,
            (32 << 20) + 1,
        ] {
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
