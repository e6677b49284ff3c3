//! Write-behind for bundle members: dirty pages of large members start going to disk while
//! the run is still going, so the seal's durability barrier finds little left to write.
//!
//! A [`super::writer::StagedFile`] hands every [`CHUNK`] bytes it has written (and, at
//! commit, the rest of a file of at least [`MIN_AT_COMMIT`] bytes or of one already handed
//! on) to one background thread per bundle, which calls
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)` on that range: it starts writeback and does not
//! wait for it, and it does so off the thread that writes the results (the call can block
//! on block allocation or a congested device).
//!
//! Durability and crash safety are unchanged: this is a hint and nothing more. Nothing is
//! made durable by it, no ordering depends on it, and the seal's barrier (`syncfs` or an
//! `fsync` of every file, see the writer) runs exactly as before. Its result is ignored on
//! purpose: `SYNC_FILE_RANGE_WRITE` without `SYNC_FILE_RANGE_WAIT_AFTER` does not check or
//! advance the file's writeback-error sequence, so an I/O error it meets stays recorded in
//! the file's mapping and the filesystem and is reported by the barrier, which aborts the
//! seal as before. On tmpfs (no writeback) it does nothing.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Hand a range on once this many bytes of a file are not handed on yet.
pub(crate) const CHUNK: u64 = 1 << 20;

/// At commit, the rest of a file is handed on if the file holds at least this many bytes
/// (or if part of it was handed on already); smaller files are left to the barrier (many
/// small log files are written back together by `syncfs` more cheaply than one by one).
pub(crate) const MIN_AT_COMMIT: u64 = 64 << 10;

/// One range of one file to start writing back.
#[derive(Debug)]
struct Job {
    file: File,
    offset: u64,
    len: u64,
}

#[derive(Debug, Default)]
enum State {
    /// No thread yet (started at the first range).
    #[default]
    Idle,
    Running {
        tx: mpsc::Sender<Job>,
        handle: JoinHandle<()>,
    },
    /// [`WriteBehind::finish`] ran: no thread is started again, ranges are dropped.
    Finished,
}

/// The write-behind of one bundle (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct WriteBehind {
    state: Mutex<State>,
    /// Every range handed on, by temp-file path (tests check them).
    #[cfg(test)]
    pub(crate) handed: Mutex<Vec<(std::path::PathBuf, u64, u64)>>,
}

impl WriteBehind {
    /// Start writeback of `len` bytes of `file` at `offset`, on the background thread.
    /// Best effort: a descriptor that cannot be duplicated or a thread that cannot be started
    /// leaves the range to the barrier.
    pub(crate) fn hand_on(&self, path: &std::path::Path, file: &File, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(*state, State::Finished) {
            return;
        }
        #[cfg(test)]
        self.handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((path.to_path_buf(), offset, len));
        #[cfg(not(test))]
        let _ = path;
        let Ok(file) = file.try_clone() else {
            return;
        };
        if matches!(*state, State::Idle) {
            let (tx, rx) = mpsc::channel::<Job>();
            let Ok(handle) = std::thread::Builder::new()
                .name("nexusmon-writeback".into())
                .spawn(move || {
                    for job in rx {
                        start_writeback(&job);
                    }
                })
            else {
                *state = State::Finished;
                return;
            };
            *state = State::Running { tx, handle };
        }
        if let State::Running { tx, .. } = &*state {
            let _ = tx.send(Job { file, offset, len });
        }
    }

    /// Stop the thread once every range handed on so far has been started (the seal calls
    /// this before its barrier, so no thread outlives the writing); later ranges are
    /// dropped.
    pub(crate) fn finish(&self) {
        let old = std::mem::replace(
            &mut *self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            State::Finished,
        );
        if let State::Running { tx, handle } = old {
            drop(tx);
            let _ = handle.join();
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        self.finish();
    }
}

fn start_writeback(job: &Job) {
    let (Ok(offset), Ok(len)) = (i64::try_from(job.offset), i64::try_from(job.len)) else {
        return;
    };
    // SAFETY: sync_file_range on a descriptor this job owns; it reads no memory of ours.
    // The result is ignored on purpose (see the module docs: the barrier reports errors).
    let _ = unsafe {
        libc::sync_file_range(
            job.file.as_raw_fd(),
            offset,
            len,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// Where a file stands: bytes written, bytes handed on (always a prefix: ranges are handed
/// on in order, each starting where the previous one ended).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Progress {
    pub(crate) written: u64,
    pub(crate) handed: u64,
}

impl Progress {
    /// `n` more bytes written: the range to hand on now, if [`CHUNK`] bytes are waiting.
    pub(crate) fn wrote(&mut self, n: u64) -> Option<(u64, u64)> {
        self.written += n;
        self.take_if(self.written - self.handed >= CHUNK)
    }

    /// At commit, the file is `size` bytes: the rest to hand on, if any (see
    /// [`MIN_AT_COMMIT`]).
    pub(crate) fn commit(&mut self, size: u64) -> Option<(u64, u64)> {
        self.written = self.written.max(size);
        let rest = self.written - self.handed;
        self.take_if(rest > 0 && (self.handed > 0 || self.written >= MIN_AT_COMMIT))
    }

    fn take_if(&mut self, cond: bool) -> Option<(u64, u64)> {
        if !cond {
            return None;
        }
        let range = (self.handed, self.written - self.handed);
        self.handed = self.written;
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::testrng::Rng;

    /// Generated: any sequence of write lengths and a final size. After every write fewer
    /// than `CHUNK` bytes wait; ranges are contiguous from 0; at commit the whole file is
    /// handed on exactly when it holds `MIN_AT_COMMIT` bytes or more or was handed on in part.
    #[test]
    fn progress_hands_on_a_contiguous_prefix_and_the_rest_at_commit() {
        for seed in 0..300u64 {
            let mut rng = Rng(seed);
            let mut p = Progress::default();
            let mut ranges = Vec::new();
            let mut written = 0u64;
            for _ in 0..rng.below(12u32) {
                let n = match rng.below(3u8) {
                    0 => rng.below(64u64),
                    1 => rng.below(CHUNK),
                    _ => rng.below(3 * CHUNK),
                };
                written += n;
                ranges.extend(p.wrote(n));
                assert!(p.written - p.handed < CHUNK, "seed {seed}: {p:?}");
            }
            let before = ranges.len();
            // write_file_from copies beside the counter: the size may exceed what was seen.
            let size = written
                + if rng.chance(30) {
                    rng.below(2 * MIN_AT_COMMIT)
                } else {
                    0
                };
            ranges.extend(p.commit(size));
            let mut at = 0;
            for &(o, l) in &ranges {
                assert_eq!(o, at, "seed {seed}: {ranges:?}");
                assert!(l > 0, "seed {seed}: {ranges:?}");
                at += l;
            }
            if before > 0 || size >= MIN_AT_COMMIT {
                assert_eq!(at, size, "seed {seed}: {ranges:?}");
            } else {
                assert!(ranges.is_empty(), "seed {seed}: {ranges:?}");
            }
        }
    }

    /// Ranges handed on reach the thread and are started; `finish` stops it, and ranges after
    /// it are dropped without starting a thread again.
    #[test]
    fn finish_stops_the_thread_and_later_ranges_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        std::fs::write(&path, vec![5u8; 3 << 20]).unwrap();
        let f = File::open(&path).unwrap();
        let w = WriteBehind::default();
        w.hand_on(&path, &f, 0, 1 << 20);
        w.hand_on(&path, &f, 1 << 20, 2 << 20);
        assert!(matches!(*w.state.lock().unwrap(), State::Running { .. }));
        w.finish();
        assert!(matches!(*w.state.lock().unwrap(), State::Finished));
        w.hand_on(&path, &f, 0, 1);
        assert!(matches!(*w.state.lock().unwrap(), State::Finished));
        assert_eq!(
            *w.handed.lock().unwrap(),
            vec![(path.clone(), 0, 1 << 20), (path, 1 << 20, 2 << 20)]
        );
    }
}
