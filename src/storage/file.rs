//! [`FileStore`]: a durable [`LogStore`] in one directory, recovered on open.
//!
//! # On-disk format
//!
//! All integers are big-endian; every CRC is CRC-32 (IEEE, as `crc32fast` computes it).
//!
//! | file | content |
//! | --- | --- |
//! | [`LOG_FILE`] (`raft.log`) | records, back to back, no header |
//! | [`HARD_STATE_FILE`] (`hard_state`) | `[u32 crc][term u64][voted u8: 0 or 1][voted_for u64]` (21 bytes; crc of the 17 after it) |
//! | [`META_FILE`] (`meta`) | `[u32 crc][snapshot_index u64][snapshot_term u64]` (20 bytes; crc of the 16 after it) |
//! | [`SNAPSHOT_FILE`] (`snapshot`) | `[u32 crc][index u64][term u64][voter count u32][voters u64 each][data]` (crc of everything after it) |
//!
//! A log record is `[u32 len][u32 crc][body]`, where `body` is
//! `[term u64][index u64][kind u8][data]`, `len` is the body's length (at least 17) and
//! `crc` covers the body only. `kind` is 0 for [`EntryKind::Normal`], 1 for
//! [`EntryKind::Noop`]. Indices increase by one from record to record; the first record
//! may be at or below the snapshot point (see compaction below), never above
//! `snapshot_index + 1`. A missing file reads as empty: no entries, the default hard
//! state, the snapshot point (0, 0).
//!
//! # Writes and what a crash leaves
//!
//! - **Append**: every record of one call is encoded into one buffer and written with one
//!   write at the end of the valid log, then (unless the policy is [`SyncPolicy::None`])
//!   synced: inline by [`LogStore::append`], or by the background syncer for
//!   [`LogStore::append_deferred`] once [`LogStore::start_background_sync`] started it
//!   (group commit: one sync covers every append made while the previous sync ran; the
//!   ticket `append_deferred` returns is reported to the sink when its sync returns). A
//!   crash mid-write or before the sync leaves a torn or short tail, which the next open
//!   cuts: only writes not yet reported durable can be lost.
//! - **Overwrite** (an append whose first index is at or below the last index): the file
//!   is first cut at that record's offset (`set_len`) and synced inline (group commit
//!   included) before the new records are written. Without that sync a power loss could keep the new
//!   records' blocks but not the shorter length, leaving stale records of the old suffix
//!   after the new ones with contiguous indices: a log that never existed.
//! - **Hard state and snapshot point**: written to `NAME.tmp`, synced, renamed over `NAME`,
//!   then the directory is synced (no syncs under `None`). Always inline: a vote must be
//!   durable before it is sent, and hard-state changes are rare (elections). A reader sees the old file
//!   or the new one, never a mix; a leftover `.tmp` from a crash is deleted on open.
//! - **Compaction**: the new snapshot point goes to the meta file first, then the
//!   in-memory prefix is dropped. The file's prefix is reclaimed at once when it is at
//!   least half the file: the remaining records are copied to `raft.log.tmp`, which is
//!   synced and renamed over the log. Otherwise the discarded records stay in the file and
//!   are skipped on open. Because the meta file is replaced before the log is rewritten,
//!   a crash between the two leaves a log that starts at or below the snapshot point, which
//!   is fine; the other order could leave a hole.
//!
//! - **Snapshot** ([`LogStore::save_snapshot`]): the snapshot file is replaced atomically
//!   (temporary file, sync, rename, directory sync); then, if the log's entry at the
//!   snapshot's index does not have its term (a leader's snapshot over a short or divergent
//!   log), the log file is cut to nothing and synced; then the meta file gets the snapshot
//!   point; a log whose entry there matches loses its prefix as in a compaction. A crash
//!   between these steps leaves a snapshot file ahead of the meta file, and the next open
//!   finishes the job (the same cut, then the meta file), so the snapshot is never lost
//!   and no log entry that contradicts it survives.
//!
//! # Recovery
//!
//! [`FileStore::open`] reads the log from the start and stops at the first record that is
//! short, has an impossible length, fails its CRC, or does not follow the previous index,
//! and cuts the file there (`tracing::warn!` says how many bytes and why). A crash
//! mid-append can only damage the tail, so this is the normal way to lose an
//! unacknowledged write. A damaged record followed by valid ones (media corruption, not a
//! torn write) is cut the same way, valid followers included: a record's index and
//! position say nothing about whether the records after a gap belong to the same history,
//! and keeping them would make a log with a hole; Raft repairs a short log from the leader
//! but cannot repair one with a hole. The warning says whether a valid record followed.
//!
//! What is refused rather than cut (open fails with [`StoreError::Io`] of kind
//! `InvalidData`), because cutting would silently destroy data that was written whole:
//! a hard-state or meta file of the wrong size or with a bad CRC (an atomically replaced
//! file is never torn; forgetting a vote would let the node vote twice in one term), a
//! record with a valid CRC but an unknown kind (another format version), and a log whose
//! first record lies above `snapshot_index + 1`.
//!
//! A log whose last valid record is below the snapshot point (possible only when writes
//! were lost to a power loss under [`SyncPolicy::None`]) holds nothing worth keeping and
//! is emptied, so that the next append at `snapshot_index + 1` stays contiguous.
//!
//! # Limits
//!
//! - One store per directory: [`FileStore::open`] takes an exclusive `flock` on
//!   [`LOCK_FILE`] (held until the store is dropped; the kernel drops it when the process
//!   dies, so a crash never leaves a stale lock) and fails with [`StoreError::Locked`],
//!   naming the directory and the lock file, when another store, in this process or
//!   another, holds it.
//! - One log file, not segments: compaction reclaims the discarded prefix by rewriting
//!   the file once that prefix is half of it.
//! - After an `Io` error from a write, what reached the disk is unknown (a failed `fsync`
//!   cannot simply be retried), so the store refuses every later write with another `Io`
//!   error; reads still answer from memory. Drop it and reopen the directory to recover.
//! - Reads never touch the disk: every entry after the snapshot point is held in memory.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::group::{timed_sync, SyncStats, Syncer};
use super::SyncPolicy;
use crate::raft::store;
use crate::raft::{
    DurableSink, Entry, EntryKind, HardState, Index, LogStore, Snapshot, SnapshotMeta, StoreError,
    Term,
};

/// Name of the log file inside a store's directory.
pub const LOG_FILE: &str = "raft.log";
/// Name of the hard-state file inside a store's directory.
pub const HARD_STATE_FILE: &str = "hard_state";
/// Name of the file holding the snapshot point inside a store's directory.
pub const META_FILE: &str = "meta";
/// Name of the file holding the latest state-machine snapshot inside a store's directory.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// Name of the lock file inside a store's directory: held (`flock`) while a store is open,
/// it holds the owner's process id for the error message a second opener gets.
pub const LOCK_FILE: &str = "LOCK";

/// Suffix of the temporary file an atomic replacement writes before its rename.
const TMP_SUFFIX: &str = ".tmp";
/// Further attempts to take a held directory lock, and the pause between them (about 0.5 s
/// in all: long enough for a forked child to reach its exec, short for a refusal).
const LOCK_RETRIES: u32 = 50;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
/// `[u32 len][u32 crc]` before each record's body.
const RECORD_HEADER: u64 = 8;
/// `[term u64][index u64][kind u8]` at the start of each body.
const BODY_HEADER: usize = 17;
const KIND_NORMAL: u8 = 0;
const KIND_NOOP: u8 = 1;
/// Body of the hard-state file: term, voted flag, voted_for.
const HARD_STATE_BODY: usize = 17;
/// Body of the meta file: snapshot index and term.
const META_BODY: usize = 16;
/// An append buffer grown past this is released afterwards rather than kept for reuse.
const MAX_KEPT_BUFFER: usize = 4 << 20;

/// What [`FileStore::open`] found in the log file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records read, those at or below the snapshot point included.
    pub records: u64,
    /// Bytes cut from the end of the log file (0 when the file ended cleanly).
    pub truncated_bytes: u64,
}

/// A durable [`LogStore`]: an append-only log file plus atomically replaced hard-state and
/// snapshot-point files in one directory (format and crash behaviour in the module docs).
///
/// It answers exactly as [`MemStore`](crate::raft::MemStore) does, with one addition: an
/// append whose entries have a hole among themselves (a caller bug `MemStore` stores as
/// is) is refused with [`StoreError::NotContiguous`] naming the first entry out of
/// sequence, because such a log would be cut at the hole on the next open.
#[derive(Debug)]
pub struct FileStore {
    /// The background syncer, if started; declared first so that it is dropped (its
    /// pending sync finished, its thread joined) before the lock is released.
    syncer: Option<Syncer>,
    /// Writes made so far: the ticket of the latest write the syncer is asked to cover.
    ticket: u64,
    /// Counts and timing of the log's syncs.
    stats: Arc<SyncStats>,
    dir: PathBuf,
    sync: SyncPolicy,
    /// Shared with the syncer thread, which syncs it while the driver writes the next records.
    log: Arc<File>,
    /// Length of the valid records in the log file: where the next record goes.
    log_len: u64,
    hard_state: HardState,
    snapshot_index: Index,
    snapshot_term: Term,
    /// Every entry after the snapshot point, so that reads never touch the disk.
    entries: VecDeque<Entry>,
    /// The latest snapshot saved (its data is shared with whoever reads it).
    snapshot: Option<Snapshot>,
    /// File offset of each record in `entries`: where an overwrite cuts the file.
    offsets: VecDeque<u64>,
    recovery: Recovery,
    /// Encoding buffer reused across appends, so the steady state allocates nothing.
    buf: Vec<u8>,
    /// Set by the first I/O error of a write: after it the disk's state is unknown (a
    /// failed fsync cannot be retried: the kernel may have dropped the dirty pages), so
    /// every later write is refused until the store is reopened and recovered.
    failed: bool,
    /// The open lock file: its `flock` keeps a second store out of the directory.
    _lock: File,
}

impl FileStore {
    /// Opens the store in `dir`, creating the directory if needed and recovering what is
    /// there (a torn or corrupt log tail is cut; see the module docs).
    pub fn open(dir: &Path, sync: SyncPolicy) -> Result<FileStore, StoreError> {
        let dir_existed = dir.is_dir();
        fs::create_dir_all(dir)?;
        if !dir_existed && sync.is_durable() {
            // The new directory's own entry must survive a power loss too.
            sync_dir(parent_of(dir))?;
        }
        // Before anything is read or cut: a second writer on the same files would interleave
        // records the first never knew of.
        let lock = lock_dir(dir)?;
        for name in [LOG_FILE, HARD_STATE_FILE, META_FILE, SNAPSHOT_FILE] {
            // A leftover temporary file is a replacement that never reached its rename:
            // the file it was meant to replace is still the valid one.
            match fs::remove_file(tmp_path(dir, name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }

        let hard_state = match read_small(dir, HARD_STATE_FILE, HARD_STATE_BODY)? {
            Some(body) => decode_hard_state(&body)?,
            None => HardState::default(),
        };
        let (snapshot_index, snapshot_term) = match read_small(dir, META_FILE, META_BODY)? {
            Some(body) => (be_u64(&body[0..8]), be_u64(&body[8..16])),
            None => (0, 0),
        };

        let log_path = dir.join(LOG_FILE);
        let log_existed = log_path.exists();
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)?;
        if !log_existed && sync.is_durable() {
            // Appends only fdatasync the file; its directory entry needs this once.
            sync_dir(dir)?;
        }

        let mut store = FileStore {
            syncer: None,
            ticket: 0,
            stats: Arc::new(SyncStats::default()),
            dir: dir.to_path_buf(),
            sync,
            log: Arc::new(log),
            log_len: 0,
            hard_state,
            snapshot_index,
            snapshot_term,
            entries: VecDeque::new(),
            snapshot: None,
            offsets: VecDeque::new(),
            recovery: Recovery::default(),
            buf: Vec::new(),
            failed: false,
            _lock: lock,
        };
        store.recover_log()?;
        if let Some(snap) = read_snapshot(dir)? {
            if snap.meta.index > store.snapshot_index {
                // A save that crashed before its meta file was replaced: finish it.
                tracing::warn!(
                    dir = %dir.display(),
                    snapshot_index = snap.meta.index,
                    meta_index = store.snapshot_index,
                    "snapshot file is ahead of the meta file; finishing the interrupted save"
                );
                store.cut_to_snapshot(&snap.meta)?;
            }
            store.snapshot = Some(snap);
        }
        Ok(store)
    }

    /// Discards the log up to `meta`'s index and records it as the snapshot point, once the
    /// snapshot file is durable (module docs: the log is cut before the meta file changes).
    fn cut_to_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), StoreError> {
        let (index, term) = (meta.index, meta.term);
        if index < self.snapshot_index {
            return Ok(());
        }
        let n = (index - self.snapshot_index) as usize;
        let matches = n == 0 || self.entries.get(n - 1).is_some_and(|e| e.term == term);
        if !matches {
            self.log.set_len(0)?;
            self.entries.clear();
            self.offsets.clear();
            self.log_len = 0;
            self.sync.sync(&self.log)?;
        }
        let mut body = [0u8; META_BODY];
        body[0..8].copy_from_slice(&index.to_be_bytes());
        body[8..16].copy_from_slice(&term.to_be_bytes());
        self.replace_small(META_FILE, &body)?;
        self.snapshot_index = index;
        self.snapshot_term = term;
        if matches {
            self.entries.drain(..n);
            self.offsets.drain(..n);
            self.maybe_reclaim()?;
        }
        Ok(())
    }

    fn save_snapshot_inner(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        if snap.meta.index < self.snapshot_index {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(4 + 20 + 8 * snap.meta.voters.len() + snap.data.len());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&snap.meta.index.to_be_bytes());
        bytes.extend_from_slice(&snap.meta.term.to_be_bytes());
        let voters = u32::try_from(snap.meta.voters.len())
            .map_err(|_| invalid_data("snapshot names too many voters".into()))?;
        bytes.extend_from_slice(&voters.to_be_bytes());
        for v in &snap.meta.voters {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend_from_slice(&snap.data);
        let crc = crc32fast::hash(&bytes[4..]);
        bytes[0..4].copy_from_slice(&crc.to_be_bytes());
        self.replace_whole(SNAPSHOT_FILE, &bytes)?;
        self.snapshot = Some(snap.clone());
        self.cut_to_snapshot(&snap.meta)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sync policy the store was opened with.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.sync
    }

    /// What the last open found in the log file.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Number of entries held (after the snapshot point).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held after the snapshot point.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes one log record of an entry whose command is `data_len` bytes takes on disk
    /// (header, checksum, term, index, kind and the command), so that a sync floor can
    /// write records of the same size.
    pub fn record_bytes(data_len: usize) -> usize {
        RECORD_HEADER as usize + BODY_HEADER + data_len
    }

    /// Bytes of valid records in the log file, discarded ones not yet reclaimed included.
    pub fn log_file_len(&self) -> u64 {
        self.log_len
    }

    /// Counts and latency histogram of the log's syncs (shared: read it while the store runs).
    pub fn sync_stats(&self) -> Arc<SyncStats> {
        self.stats.clone()
    }

    /// Whether appends are synced by a background syncer (group commit).
    pub fn group_commit(&self) -> bool {
        self.syncer.is_some()
    }

    /// Refuses a write once an earlier one failed with an I/O error.
    fn check_usable(&self) -> Result<(), StoreError> {
        if self.failed || self.syncer.as_ref().is_some_and(Syncer::failed) {
            return Err(StoreError::Io(io::Error::other(
                "an earlier I/O error left the store's files in an unknown state; reopen it",
            )));
        }
        Ok(())
    }

    /// Passes `r` through, remembering an I/O error (see `failed`).
    fn note<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Io(_)) = &r {
            self.failed = true;
        }
        r
    }

    /// Reads the log file into memory and cuts it after the last trustworthy record.
    fn recover_log(&mut self) -> Result<(), StoreError> {
        let file_len = self.log.metadata()?.len();
        (&*self.log).seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(1 << 16, &*self.log);
        let mut pos = 0u64;
        let mut records = 0u64;
        let mut first: Option<Index> = None;
        let mut last: Index = 0;
        // Why the scan stopped before the end of the file, and whether a valid record
        // follows the bad one (media corruption rather than a torn write).
        let mut stop: Option<(String, bool)> = None;

        loop {
            let mut header = [0u8; RECORD_HEADER as usize];
            let n = read_full(&mut reader, &mut header)?;
            if n == 0 {
                break;
            }
            if n < header.len() {
                stop = Some((format!("{n}-byte partial record header"), false));
                break;
            }
            let len = u64::from(be_u32(&header[0..4]));
            let crc = be_u32(&header[4..8]);
            let room = file_len.saturating_sub(pos + RECORD_HEADER);
            if len < BODY_HEADER as u64 {
                stop = Some((format!("record length {len} is below the minimum"), false));
                break;
            }
            if len > room {
                let why = format!("record length {len} runs past the end ({room} bytes left)");
                stop = Some((why, false));
                break;
            }
            let mut body = vec![0u8; len as usize];
            if read_full(&mut reader, &mut body)? < body.len() {
                stop = Some(("short record body".into(), false));
                break;
            }
            if crc32fast::hash(&body) != crc {
                let next = pos + RECORD_HEADER + len;
                let follows = valid_record_at(&self.log, next, file_len)?;
                stop = Some(("checksum mismatch".into(), follows));
                break;
            }
            let term = be_u64(&body[0..8]);
            let index = be_u64(&body[8..16]);
            let kind = match body[16] {
                KIND_NORMAL => EntryKind::Normal,
                KIND_NOOP => EntryKind::Noop,
                k => {
                    return Err(invalid_data(format!(
                        "{}: record at offset {pos} (index {index}) has a valid checksum but \
                         unknown kind {k}; written by another format version?",
                        self.dir.join(LOG_FILE).display()
                    )))
                }
            };
            if index == 0 || (first.is_some() && index != last + 1) {
                let why = format!("index {index} does not follow {last}");
                stop = Some((why, false));
                break;
            }
            first.get_or_insert(index);
            last = index;
            records += 1;
            if index > self.snapshot_index {
                // The body's allocation becomes the entry's data: no second copy.
                let data = Bytes::from(body).slice(BODY_HEADER..);
                self.entries.push_back(Entry {
                    term,
                    index,
                    kind,
                    data,
                });
                self.offsets.push_back(pos);
            }
            pos += RECORD_HEADER + len;
        }
        drop(reader);

        let mut valid_len = pos;
        if let Some(first) = first {
            if first > self.snapshot_index + 1 {
                return Err(invalid_data(format!(
                    "{}: the log starts at index {first} but the snapshot point is {}; \
                     entries in between are missing",
                    self.dir.join(LOG_FILE).display(),
                    self.snapshot_index
                )));
            }
            if last < self.snapshot_index {
                // Only possible after lost writes (SyncPolicy::None and a power loss).
                // Every record is discarded anyway, and keeping them would put a gap
                // before the next append at snapshot_index + 1.
                tracing::warn!(
                    dir = %self.dir.display(),
                    last_record = last,
                    snapshot_index = self.snapshot_index,
                    "log file ends below the snapshot point; emptying it"
                );
                valid_len = 0;
            }
        }

        if valid_len < file_len {
            let cut = file_len - valid_len;
            match &stop {
                Some((reason, true)) => tracing::warn!(
                    dir = %self.dir.display(),
                    offset = valid_len,
                    cut_bytes = cut,
                    reason = %reason,
                    "log file is corrupt mid-log (valid records follow the bad one); \
                     cutting everything from the bad record on"
                ),
                Some((reason, false)) => tracing::warn!(
                    dir = %self.dir.display(),
                    offset = valid_len,
                    cut_bytes = cut,
                    reason = %reason,
                    "log file has a torn or corrupt tail; cutting it"
                ),
                None => {}
            }
            self.log.set_len(valid_len)?;
            // The cut must be durable before anything is appended after it, for the
            // same reason as an overwrite's (module docs).
            self.sync.sync(&self.log)?;
        }
        self.log_len = valid_len;
        self.recovery = Recovery {
            records,
            truncated_bytes: file_len - valid_len,
        };
        Ok(())
    }

    /// Replaces file `name` atomically with `[crc][body]`.
    fn replace_small(&self, name: &str, body: &[u8]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(4 + body.len());
        bytes.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
        bytes.extend_from_slice(body);
        self.replace_whole(name, &bytes)
    }

    /// Replaces file `name` atomically with `bytes`: temporary file, sync, rename, sync of
    /// the directory (no syncs under [`SyncPolicy::None`]).
    fn replace_whole(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = tmp_path(&self.dir, name);
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        self.sync.sync(&f)?;
        drop(f);
        fs::rename(&tmp, self.dir.join(name))?;
        if self.sync.is_durable() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Rewrites the log without its discarded prefix when that prefix is at least half of
    /// it, so that space is reclaimed at an amortised cost of at most one copy per byte.
    fn maybe_reclaim(&mut self) -> io::Result<()> {
        let prefix = self.offsets.front().copied().unwrap_or(self.log_len);
        if prefix == 0 || prefix < self.log_len - prefix {
            return Ok(());
        }
        let live = self.log_len - prefix;
        let tmp = tmp_path(&self.dir, LOG_FILE);
        let mut new = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        (&*self.log).seek(SeekFrom::Start(prefix))?;
        let copied = io::copy(&mut Read::take(&*self.log, live), &mut new)?;
        if copied != live {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("log file shorter than expected: copied {copied} of {live} bytes"),
            ));
        }
        // This sync also covers records written to the old file but not yet synced by the
        // background syncer: they were copied, and later sync requests name the new file.
        self.sync.sync(&new)?;
        fs::rename(&tmp, self.dir.join(LOG_FILE))?;
        // The rename is the commit point: from here the new file is the log, so the handle
        // and offsets follow it before anything else can fail.
        self.log = Arc::new(new);
        for off in &mut self.offsets {
            *off -= prefix;
        }
        self.log_len = live;
        if self.sync.is_durable() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Checks that `entries` may be appended and encodes them into `self.buf`.
    fn encode_batch(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.buf.clear();
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last_index = self.last_index();
        if first.index <= self.snapshot_index || first.index > last_index + 1 {
            return Err(StoreError::NotContiguous {
                first: first.index,
                snapshot_index: self.snapshot_index,
                last_index,
            });
        }

        // A hole inside the batch is refused too: written as is, it would be cut at the
        // next open, silently losing the entries after it.
        for (i, e) in entries.iter().enumerate() {
            if e.index != first.index + i as Index {
                return Err(StoreError::NotContiguous {
                    first: e.index,
                    snapshot_index: self.snapshot_index,
                    last_index: first.index + i as Index - 1,
                });
            }
            encode_record(&mut self.buf, e)?;
        }
        Ok(())
    }

    /// Writes the batch `encode_batch` accepted and encoded, cutting a conflicting suffix
    /// first, and syncs it inline unless `defer` (the caller then asks the syncer).
    fn write_batch(&mut self, entries: &[Entry], defer: bool) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };

        let keep = (first.index - self.snapshot_index - 1) as usize;
        if keep < self.entries.len() {
            let cut = self.offsets[keep];
            self.log.set_len(cut)?;
            // Memory follows the file at once, so that a failure below leaves both agreeing.
            self.entries.truncate(keep);
            self.offsets.truncate(keep);
            self.log_len = cut;
            // Inline even under group commit: the cut must be on disk before the records
            // that replace the suffix are (module docs). Overwrites are rare (a follower
            // under a new leader), so this sync stalling the writer costs little.
            self.sync.sync(&self.log)?;
        }

        let at = self.log_len;
        let mut log: &File = &self.log;
        let written = log
            .seek(SeekFrom::Start(at))
            .and_then(|_| log.write_all(&self.buf));
        if let Err(e) = written {
            // Best effort: drop a partial record now rather than leave it for recovery.
            let _ = self.log.set_len(at);
            return Err(e.into());
        }
        if !defer {
            timed_sync(self.sync, &self.log, entries.len() as u64, &self.stats)?;
        }

        let mut off = at;
        for e in entries {
            self.offsets.push_back(off);
            off += RECORD_HEADER + (BODY_HEADER + e.data.len()) as u64;
            self.entries.push_back(e.clone());
        }
        self.log_len = off;
        if self.buf.capacity() > MAX_KEPT_BUFFER {
            self.buf = Vec::new();
        }
        Ok(())
    }

    fn save_hard_state_inner(&mut self, hs: HardState) -> Result<(), StoreError> {
        if hs == self.hard_state {
            // Already in the file (and durable, unless the policy is None): skip the fsyncs.
            return Ok(());
        }
        let mut body = [0u8; HARD_STATE_BODY];
        body[0..8].copy_from_slice(&hs.term.to_be_bytes());
        if let Some(v) = hs.voted_for {
            body[8] = 1;
            body[9..17].copy_from_slice(&v.to_be_bytes());
        }
        self.replace_small(HARD_STATE_FILE, &body)?;
        self.hard_state = hs;
        Ok(())
    }

    fn compact_inner(&mut self, upto: Index) -> Result<(), StoreError> {
        let Some((n, term)) = store::compaction(&self.entries, self.snapshot_index, upto)? else {
            return Ok(());
        };
        let mut body = [0u8; META_BODY];
        body[0..8].copy_from_slice(&upto.to_be_bytes());
        body[8..16].copy_from_slice(&term.to_be_bytes());
        // The snapshot point is recorded before any record leaves the file (module docs).
        self.replace_small(META_FILE, &body)?;
        self.snapshot_index = upto;
        self.snapshot_term = term;
        self.entries.drain(..n);
        self.offsets.drain(..n);
        self.maybe_reclaim()?;
        Ok(())
    }
}

impl LogStore for FileStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.check_usable()?;
        // Refusals (a hole, an oversized entry) come before any file is touched and leave
        // the store usable; only errors from the write itself mark it failed.
        self.encode_batch(entries)?;
        let r = self.write_batch(entries, false);
        self.note(r)
    }

    fn append_deferred(&mut self, entries: &[Entry]) -> Result<Option<u64>, StoreError> {
        if self.syncer.is_none() {
            return self.append(entries).map(|()| None);
        }
        self.check_usable()?;
        self.encode_batch(entries)?;
        let r = self.write_batch(entries, true);
        self.note(r)?;
        if entries.is_empty() {
            return Ok(None);
        }
        self.ticket += 1;
        let syncer = self.syncer.as_ref().expect("checked above");
        syncer.request(self.ticket, entries.len() as u64, &self.log);
        Ok(Some(self.ticket))
    }

    fn start_background_sync(&mut self, sink: DurableSink) -> bool {
        if self.syncer.is_some() || !self.sync.is_durable() {
            // Under SyncPolicy::None there is nothing to wait for: appends count at once.
            return false;
        }
        let name = format!(
            "log-sync-{}",
            self.dir.file_name().unwrap_or_default().to_string_lossy()
        );
        match Syncer::start(name, self.sync, self.stats.clone(), sink) {
            Ok(s) => {
                self.syncer = Some(s);
                true
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "no syncer thread; syncing inline");
                false
            }
        }
    }

    fn save_hard_state(&mut self, hs: HardState) -> Result<(), StoreError> {
        self.check_usable()?;
        let r = self.save_hard_state_inner(hs);
        self.note(r)
    }

    fn compact(&mut self, upto: Index) -> Result<(), StoreError> {
        self.check_usable()?;
        let r = self.compact_inner(upto);
        self.note(r)
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn snapshot_point(&self) -> (Index, Term) {
        (self.snapshot_index, self.snapshot_term)
    }

    fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, StoreError> {
        store::read_range(&self.entries, self.snapshot_index, lo, hi)
    }

    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        self.check_usable()?;
        let r = self.save_snapshot_inner(snap);
        self.note(r)
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.snapshot.clone())
    }
}

/// Reads the snapshot file of `dir`: None if there is none, an error naming the file if it
/// is damaged (it is replaced atomically, so damage is not a torn write).
fn read_snapshot(dir: &Path) -> Result<Option<Snapshot>, StoreError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |why: String| invalid_data(format!("{}: {why}", path.display()));
    if bytes.len() < 4 + 20 {
        return Err(bad(format!(
            "{} bytes is shorter than a header",
            bytes.len()
        )));
    }
    if crc32fast::hash(&bytes[4..]) != be_u32(&bytes[0..4]) {
        return Err(bad("checksum mismatch".into()));
    }
    let index = be_u64(&bytes[4..12]);
    let term = be_u64(&bytes[12..20]);
    let count = be_u32(&bytes[20..24]) as usize;
    let data_at = count
        .checked_mul(8)
        .and_then(|v| v.checked_add(24))
        .filter(|&at| at <= bytes.len())
        .ok_or_else(|| bad(format!("{count} voters do not fit in the file")))?;
    let voters = bytes[24..data_at].chunks_exact(8).map(be_u64).collect();
    let data = Bytes::from(bytes).slice(data_at..);
    Ok(Some(Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            voters,
        },
        data,
    }))
}

/// Appends `e`'s record to `buf`.
fn encode_record(buf: &mut Vec<u8>, e: &Entry) -> Result<(), StoreError> {
    let len = u32::try_from(BODY_HEADER + e.data.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("entry {} is too large for a log record", e.index),
        )
    })?;
    let start = buf.len();
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&[0; 4]); // the CRC, filled in once the body is in place
    buf.extend_from_slice(&e.term.to_be_bytes());
    buf.extend_from_slice(&e.index.to_be_bytes());
    buf.push(match e.kind {
        EntryKind::Normal => KIND_NORMAL,
        EntryKind::Noop => KIND_NOOP,
    });
    buf.extend_from_slice(&e.data);
    let body = start + RECORD_HEADER as usize;
    let crc = crc32fast::hash(&buf[body..]);
    buf[start + 4..body].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Whether a whole record with a valid CRC starts at `pos` (for the recovery warning only).
fn valid_record_at(file: &File, pos: u64, file_len: u64) -> io::Result<bool> {
    let mut r = file;
    if file_len.saturating_sub(pos) < RECORD_HEADER + BODY_HEADER as u64 {
        return Ok(false);
    }
    r.seek(SeekFrom::Start(pos))?;
    let mut header = [0u8; RECORD_HEADER as usize];
    r.read_exact(&mut header)?;
    let len = u64::from(be_u32(&header[0..4]));
    if len < BODY_HEADER as u64 || len > file_len - pos - RECORD_HEADER {
        return Ok(false);
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(crc32fast::hash(&body) == be_u32(&header[4..8]))
}

/// Reads `[crc][body]` from `dir/name`: `None` if the file does not exist, an error if it
/// is damaged (such a file is replaced atomically, so damage is not a torn write).
fn read_small(dir: &Path, name: &str, body_len: usize) -> Result<Option<Vec<u8>>, StoreError> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if bytes.len() != 4 + body_len {
        return Err(invalid_data(format!(
            "{}: {} bytes, expected {}",
            path.display(),
            bytes.len(),
            4 + body_len
        )));
    }
    let body = bytes[4..].to_vec();
    if crc32fast::hash(&body) != be_u32(&bytes[0..4]) {
        return Err(invalid_data(format!(
            "{}: checksum mismatch",
            path.display()
        )));
    }
    Ok(Some(body))
}

fn decode_hard_state(body: &[u8]) -> Result<HardState, StoreError> {
    let term = be_u64(&body[0..8]);
    let voted_for = match body[8] {
        0 => None,
        1 => Some(be_u64(&body[9..17])),
        f => {
            return Err(invalid_data(format!(
                "{HARD_STATE_FILE}: voted flag {f} is neither 0 nor 1"
            )))
        }
    };
    Ok(HardState { term, voted_for })
}

/// Reads until `buf` is full or the reader ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Takes the directory's lock file (created if missing) and writes our process id in it;
/// [`StoreError::Locked`] naming the directory and the lock when another store holds it.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    // A process that forks (to spawn a child) shares our open lock file with the child
    // until the child's exec closes it, so a lock released by a dropped store can stay
    // held for a moment: retry briefly before calling the directory taken.
    let mut attempt = f.try_lock();
    for _ in 0..LOCK_RETRIES {
        if !matches!(attempt, Err(fs::TryLockError::WouldBlock)) {
            break;
        }
        std::thread::sleep(LOCK_RETRY_PAUSE);
        attempt = f.try_lock();
    }
    match attempt {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!(", process {pid}"),
                Err(_) => String::new(),
            };
            return Err(StoreError::Locked {
                dir: dir.to_path_buf(),
                lock: path,
                holder,
            });
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(StoreError::Io(io::Error::new(
                e.kind(),
                format!("locking {}: {e}", path.display()),
            )))
        }
    }
    // Informational only (the flock is the lock): who holds it, for the error above.
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    write!(f, "{}", std::process::id())?;
    Ok(f)
}

/// Makes renames and file creations in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_of(dir: &Path) -> &Path {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{TMP_SUFFIX}"))
}

fn invalid_data(msg: String) -> StoreError {
    StoreError::Io(io::Error::new(io::ErrorKind::InvalidData, msg))
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().expect("4 bytes"))
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("8 bytes"))
}
