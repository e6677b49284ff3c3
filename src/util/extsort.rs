//! External sort with bounded memory: items are kept in a buffer of at most a byte budget,
//! spilled as sorted runs (one compact JSON line per item) into a directory the caller owns
//! (a private temporary directory, removed by its owner on success and on error), and
//! merged `FAN_IN` runs at a time, equal items kept once. Readers ([`RunReader`],
//! [`Merge`]) stream the result in order.
//!
//! A run is not trusted on the way back: each is hashed (blake3) as it is written and
//! hashed again as it is read, and the reader fails at its end when the bytes read are not
//! the bytes written. A caller that uses what it read only after the reader ended (writes
//! its result atomically, renaming once every reader finished) therefore never uses items
//! that changed on disk in between.
//!
//! Hand-written because the sort crates we looked at either hold everything in memory or
//! keep runs without any check of what comes back from disk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Runs merged at once (each reader holds one buffer of [`READ_BUF`]).
pub const FAN_IN: usize = 32;
/// Buffer of each run reader and writer.
const READ_BUF: usize = 64 * 1024;

/// One sorted run on disk: its file, the blake3 of its bytes, its item count.
#[derive(Debug)]
pub struct Run {
    path: PathBuf,
    digest: blake3::Hash,
    items: u64,
}

impl Run {
    /// Items in the run.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Read the run back in order, checking its digest at the end.
    pub fn reader<T: DeserializeOwned>(&self) -> Result<RunReader<T>> {
        let f = File::open(&self.path).map_err(|e| Error::io("open", &self.path, e))?;
        Ok(RunReader {
            r: BufReader::with_capacity(READ_BUF, f),
            hasher: blake3::Hasher::new(),
            want: self.digest,
            path: self.path.clone(),
            line: Vec::new(),
            done: false,
            _t: PhantomData,
        })
    }
}

/// Sorts items of `T` in `dir` within `budget` bytes (as the caller weighs its items).
pub struct Sorter<T> {
    dir: PathBuf,
    name: String,
    budget: usize,
    buf: Vec<T>,
    held: usize,
    runs: Vec<Run>,
    next: u64,
}

impl<T: Serialize + DeserializeOwned + Ord + Clone> Sorter<T> {
    /// A sorter writing its runs as `dir/<name>-<n>.jsonl` (created exclusively, mode 0600).
    pub fn new(dir: &Path, name: &str, budget: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            budget,
            buf: Vec::new(),
            held: 0,
            runs: Vec::new(),
            next: 0,
        }
    }

    /// Add `item`, which weighs `weight` bytes (its heap data; the item's own size is
    /// added); spills a run when the buffer reaches the budget.
    pub fn push(&mut self, item: T, weight: usize) -> Result<()> {
        self.buf.push(item);
        self.held += weight + std::mem::size_of::<T>();
        if self.held >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn path(&mut self) -> PathBuf {
        self.next += 1;
        self.dir.join(format!("{}-{}.jsonl", self.name, self.next))
    }

    fn spill(&mut self) -> Result<()> {
        let mut items = std::mem::take(&mut self.buf);
        self.held = 0;
        items.sort_unstable();
        items.dedup();
        let path = self.path();
        let run = write_run(&path, items.into_iter().map(Ok))?;
        self.runs.push(run);
        Ok(())
    }

    /// Every item pushed, sorted, equal items once, as one run (merging `FAN_IN` runs at a
    /// time; merged runs are removed as soon as they are read).
    pub fn finish(mut self) -> Result<Run> {
        if !self.buf.is_empty() || self.runs.is_empty() {
            self.spill()?;
        }
        while self.runs.len() > 1 {
            let take = self.runs.len().min(FAN_IN);
            let group: Vec<Run> = self.runs.drain(..take).collect();
            let path = self.path();
            let merged = {
                let refs: Vec<&Run> = group.iter().collect();
                write_run(&path, merge::<T>(&refs)?)?
            };
            for r in &group {
                std::fs::remove_file(&r.path).map_err(|e| Error::io("remove", &r.path, e))?;
            }
            self.runs.push(merged);
        }
        self.runs
            .pop()
            .ok_or_else(|| Error::runner("external sort: no run"))
    }
}

/// Write `items` (already sorted) as a run at `path`, hashing what is written.
fn write_run<T: Serialize>(path: &Path, items: impl Iterator<Item = Result<T>>) -> Result<Run> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    let mut w = BufWriter::with_capacity(READ_BUF, f);
    let mut hasher = blake3::Hasher::new();
    let mut line = Vec::new();
    let mut n = 0u64;
    for item in items {
        line.clear();
        serde_json::to_writer(&mut line, &item?)
            .map_err(|e| Error::runner("cannot serialize a sorted run").with_source(e))?;
        line.push(b'\n');
        hasher.update(&line);
        w.write_all(&line)
            .map_err(|e| Error::io("write", path, e))?;
        n += 1;
    }
    w.flush().map_err(|e| Error::io("write", path, e))?;
    Ok(Run {
        path: path.to_path_buf(),
        digest: hasher.finalize(),
        items: n,
    })
}

/// Items of one run, in order; at the end, an error if the bytes read are not the bytes
/// written.
pub struct RunReader<T> {
    r: BufReader<File>,
    hasher: blake3::Hasher,
    want: blake3::Hash,
    path: PathBuf,
    line: Vec<u8>,
    done: bool,
    _t: PhantomData<T>,
}

impl<T: DeserializeOwned> Iterator for RunReader<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        self.line.clear();
        match self.r.read_until(b'\n', &mut self.line) {
            Err(e) => {
                self.done = true;
                Some(Err(Error::io("read", &self.path, e)))
            }
            Ok(0) => {
                self.done = true;
                (self.hasher.finalize() != self.want).then(|| Err(changed(&self.path)))
            }
            Ok(_) => {
                self.hasher.update(&self.line);
                if let Ok(v) = serde_json::from_slice(&self.line) {
                    Some(Ok(v))
                } else {
                    self.done = true;
                    Some(Err(changed(&self.path)))
                }
            }
        }
    }
}

fn changed(path: &Path) -> Error {
    Error::runner("a temporary sorted file changed while in use: nothing was written")
        .with_path(path)
        .with_hint("another process writes into the temporary directory; run again")
}

/// Items of several runs merged in order, equal items once.
pub struct Merge<T> {
    readers: Vec<RunReader<T>>,
    heap: BinaryHeap<Reverse<(T, usize)>>,
    last: Option<T>,
    failed: bool,
}

/// Merge `runs` (each sorted) into one ordered stream, equal items once.
pub fn merge<T: DeserializeOwned + Ord + Clone>(runs: &[&Run]) -> Result<Merge<T>> {
    let mut readers = Vec::with_capacity(runs.len());
    for r in runs {
        readers.push(r.reader()?);
    }
    let mut m = Merge {
        readers,
        heap: BinaryHeap::new(),
        last: None,
        failed: false,
    };
    for i in 0..m.readers.len() {
        m.refill(i)?;
    }
    Ok(m)
}

impl<T: DeserializeOwned + Ord + Clone> Merge<T> {
    fn refill(&mut self, i: usize) -> Result<()> {
        if let Some(item) = self.readers[i].next() {
            self.heap.push(Reverse((item?, i)));
        }
        Ok(())
    }
}

impl<T: DeserializeOwned + Ord + Clone> Iterator for Merge<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        loop {
            let Reverse((item, i)) = self.heap.pop()?;
            if let Err(e) = self.refill(i) {
                self.failed = true;
                return Some(Err(e));
            }
            if self.last.as_ref() == Some(&item) {
                continue;
            }
            self.last = Some(item.clone());
            return Some(Ok(item));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::testrng::Rng;

    #[test]
    fn sorted_runs_give_the_sorted_set_whatever_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        for seed in 0..40u64 {
            let mut rng = Rng(seed);
            let n = rng.below(3000usize);
            let items: Vec<(String, u64)> = (0..n)
                .map(|_| {
                    let len = rng.below(40usize);
                    let s: String = (0..len)
                        .map(|_| char::from(b'a' + rng.below(3u8)))
                        .collect();
                    (s, rng.below(50))
                })
                .collect();
            let budget = 1 + rng.below(20_000usize);
            let mut s = Sorter::new(dir.path(), &format!("s{seed}"), budget);
            for it in &items {
                s.push(it.clone(), it.0.len()).unwrap();
            }
            let run = s.finish().unwrap();
            let got: Vec<(String, u64)> = run.reader().unwrap().map(|r| r.unwrap()).collect();
            let want: Vec<(String, u64)> = items
                .iter()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(got, want, "seed {seed}");
            assert_eq!(run.items(), want.len() as u64);
            // Only the one run is left on disk.
            let left = std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(&format!("s{seed}-"))
                })
                .count();
            assert_eq!(left, 1, "seed {seed}");
        }
    }

    #[test]
    fn a_run_changed_on_disk_is_refused_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        for seed in 0..30u64 {
            let mut rng = Rng(seed);
            let mut s = Sorter::new(dir.path(), &format!("t{seed}"), 1 << 20);
            for i in 0..200u64 {
                s.push(i, 0).unwrap();
            }
            let run = s.finish().unwrap();
            let mut bytes = std::fs::read(&run.path).unwrap();
            // Change one digit into another (still valid JSON lines) or drop a line.
            let at = rng.below(bytes.len());
            if bytes[at].is_ascii_digit() && rng.below(2) == 0 {
                bytes[at] = b'0' + (bytes[at] - b'0' + 1) % 10;
            } else {
                let start = bytes[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = bytes[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(bytes.len(), |p| at + p + 1);
                bytes.drain(start..end);
            }
            std::fs::write(&run.path, &bytes).unwrap();
            let res: Result<Vec<u64>> = run.reader().unwrap().collect();
            assert!(res.is_err(), "seed {seed}: a changed run was read back");
        }
    }
}
