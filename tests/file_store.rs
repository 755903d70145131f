//! FileStore: the LogStore conformance suite, reopen after every kind of write, and
//! recovery from torn tails and corrupt records.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftbench::raft::{Entry, EntryKind, HardState, LogStore, Snapshot, SnapshotMeta, StoreError};
use raftbench::storage::{
    FileStore, SyncPolicy, HARD_STATE_FILE, LOG_FILE, META_FILE, SNAPSHOT_FILE,
};
use tempfile::TempDir;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: if index.is_multiple_of(7) {
            EntryKind::Noop
        } else {
            EntryKind::Normal
        },
        data: Bytes::from(format!("value {index} of term {term}")),
    }
}

fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..hi).map(|i| entry(i, term)).collect()
}

/// Bytes one record of `e` takes in the log file.
fn record_len(e: &Entry) -> u64 {
    8 + 17 + e.data.len() as u64
}

/// Shows the store's recovery warnings in the output of a failing (or `--nocapture`) test.
fn show_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::WARN)
        .try_init();
}

fn open(dir: &Path) -> FileStore {
    show_warnings();
    FileStore::open(dir, SyncPolicy::None).unwrap()
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE)
}

/// Everything a store exposes, to compare a store with its reopened self.
fn state(s: &FileStore) -> (HardState, (u64, u64), u64, Vec<Entry>) {
    let (snap, _) = s.snapshot_point();
    (
        s.hard_state(),
        s.snapshot_point(),
        s.last_index(),
        s.entries(snap + 1, s.last_index() + 1).unwrap(),
    )
}

fn conformance(sync: SyncPolicy) {
    let root = TempDir::new().unwrap();
    let mut n = 0;
    raftbench::raft::store::conformance::run(|| {
        // A fresh subdirectory per store; `root` outlives every store the suite makes.
        n += 1;
        FileStore::open(&root.path().join(format!("store-{n}")), sync).unwrap()
    });
    raftbench::raft::store::conformance::run_snapshots(|| {
        n += 1;
        FileStore::open(&root.path().join(format!("store-{n}")), sync).unwrap()
    });
}

fn snapshot(index: u64, term: u64, data: &'static [u8]) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            voters: vec![1, 2, 3],
        },
        data: Bytes::from_static(data),
    }
}

#[test]
fn snapshot_and_log_suffix_survive_reopen_and_the_prefix_leaves_the_file() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = FileStore::open(dir, SyncPolicy::Fdatasync).unwrap();
    s.append(&entries(1, 101, 1)).unwrap();
    let full = s.log_file_len();
    let snap = snapshot(90, 1, b"the state machine at 90");
    s.save_snapshot(&snap).unwrap();
    assert!(
        s.log_file_len() < full / 2,
        "the covered prefix is reclaimed from the file: {} of {full} bytes left",
        s.log_file_len()
    );
    let before = state(&s);
    drop(s);
    let s = open(dir);
    assert_eq!(state(&s), before);
    assert_eq!(s.snapshot().unwrap(), Some(snap));
    assert_eq!(s.snapshot_point(), (90, 1));
    assert_eq!(s.entries(91, 101).unwrap(), entries(91, 101, 1));
}

#[test]
fn a_leaders_snapshot_over_a_divergent_log_empties_it_durably() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    s.append(&entries(1, 21, 1)).unwrap();
    let snap = snapshot(10, 2, b"leader state");
    s.save_snapshot(&snap).unwrap();
    assert_eq!((s.snapshot_point(), s.last_index()), ((10, 2), 10));
    s.append(&entries(11, 13, 2)).unwrap();
    drop(s);
    let s = open(dir);
    assert_eq!(s.snapshot().unwrap(), Some(snap));
    assert_eq!(s.last_index(), 12);
    assert_eq!(s.entries(11, 13).unwrap(), entries(11, 13, 2));
}

#[test]
fn a_save_interrupted_before_the_meta_file_is_finished_on_open() {
    // The state a crash between the snapshot file's rename and the log cut leaves: the
    // snapshot file is ahead of the meta file and the log still holds divergent entries.
    let root = TempDir::new().unwrap();
    let donor = root.path().join("donor");
    let mut d = open(&donor);
    d.save_snapshot(&snapshot(10, 3, b"after the crash"))
        .unwrap();
    drop(d);
    let dir = root.path().join("node");
    let mut s = open(&dir);
    s.append(&entries(1, 21, 1)).unwrap();
    drop(s);
    fs::copy(donor.join(SNAPSHOT_FILE), dir.join(SNAPSHOT_FILE)).unwrap();
    let s = open(&dir);
    assert_eq!(s.snapshot_point(), (10, 3));
    assert_eq!(
        s.last_index(),
        10,
        "entries that contradict the snapshot do not survive"
    );
    drop(s);
    let s = open(&dir);
    assert_eq!((s.snapshot_point(), s.last_index()), ((10, 3), 10));
}

#[test]
fn a_corrupt_snapshot_file_is_refused_naming_it() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    s.append(&entries(1, 6, 1)).unwrap();
    s.save_snapshot(&snapshot(5, 1, b"state")).unwrap();
    drop(s);
    let path = dir.join(SNAPSHOT_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let err = FileStore::open(dir, SyncPolicy::None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(SNAPSHOT_FILE) && err.contains("checksum"),
        "{err}"
    );
}

#[test]
fn conforms_without_sync() {
    conformance(SyncPolicy::None);
}

#[test]
fn conforms_with_sync_always() {
    conformance(SyncPolicy::Fdatasync);
}

#[test]
fn sync_policy_reads_from_config_in_snake_case_and_defaults_to_fsync() {
    #[derive(serde::Deserialize)]
    struct Cfg {
        sync: SyncPolicy,
    }
    for (text, want) in [
        ("fsync", SyncPolicy::Fsync),
        ("fdatasync", SyncPolicy::Fdatasync),
        ("none", SyncPolicy::None),
        // The names before group commit keep their meaning.
        ("always", SyncPolicy::Fdatasync),
        ("never", SyncPolicy::None),
    ] {
        let c: Cfg = toml::from_str(&format!("sync = \"{text}\"")).unwrap();
        assert_eq!(c.sync, want, "{text}");
    }
    assert!(toml::from_str::<Cfg>("sync = \"sometimes\"").is_err());
    assert_eq!(SyncPolicy::default(), SyncPolicy::Fsync);
    assert!(!SyncPolicy::None.is_durable());
    assert!(SyncPolicy::None.label().contains("NOT DURABLE"));
}

#[test]
fn open_creates_nested_directories() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("a/b/node-1");
    let s = FileStore::open(&dir, SyncPolicy::Fdatasync).unwrap();
    assert!(dir.is_dir());
    assert_eq!(s.last_index(), 0);
    assert_eq!(s.recovery().records, 0);
    assert_eq!(s.dir(), dir);
    assert_eq!(s.sync_policy(), SyncPolicy::Fdatasync);
}

#[test]
fn reopen_restores_appends_overwrite_hard_state_and_compaction() {
    for sync in [SyncPolicy::None, SyncPolicy::Fdatasync] {
        let root = TempDir::new().unwrap();
        let dir = root.path();
        let mut s = FileStore::open(dir, sync).unwrap();
        s.append(&entries(1, 11, 1)).unwrap();
        s.append(&entries(11, 21, 2)).unwrap();
        // A follower overwrites a conflicting suffix: 15..20 of term 2 become 15..17 of term 3.
        s.append(&entries(15, 18, 3)).unwrap();
        s.save_hard_state(HardState {
            term: 3,
            voted_for: Some(2),
        })
        .unwrap();
        // 4 of 17 records discarded: less than half the file, so nothing is rewritten.
        let len_before = s.log_file_len();
        s.compact(4).unwrap();
        assert_eq!(
            s.log_file_len(),
            len_before,
            "small prefix stays in the file"
        );
        let before = state(&s);
        assert_eq!(before.1, (4, 1));
        assert_eq!(before.2, 17);
        drop(s);

        let mut s = FileStore::open(dir, sync).unwrap();
        assert_eq!(state(&s), before, "{sync:?}");
        assert_eq!(
            s.recovery().records,
            17,
            "discarded records are read and skipped"
        );
        assert_eq!(s.recovery().truncated_bytes, 0);
        assert_eq!(s.len(), 13);

        // Keep going after the reopen: overwrite again, then compact most of the log,
        // which rewrites the file without its prefix.
        s.append(&entries(17, 30, 4)).unwrap();
        s.compact(25).unwrap();
        let live: u64 = entries(26, 30, 4).iter().map(record_len).sum();
        assert_eq!(s.log_file_len(), live, "a large prefix is reclaimed");
        assert_eq!(fs::metadata(log_path(dir)).unwrap().len(), live);
        let before = state(&s);
        assert_eq!(before.1, (25, 4));
        drop(s);

        let s = FileStore::open(dir, sync).unwrap();
        assert_eq!(state(&s), before, "{sync:?} after a rewrite");
        assert_eq!(s.recovery().records, 4);
        assert!(s.entries(25, 26).is_err(), "25 is compacted");
    }
}

#[test]
fn fully_compacted_log_reopens_and_appends() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    s.append(&entries(1, 6, 2)).unwrap();
    s.compact(5).unwrap();
    assert_eq!(s.log_file_len(), 0);
    drop(s);

    let mut s = open(dir);
    assert_eq!(s.snapshot_point(), (5, 2));
    assert_eq!(s.last_index(), 5);
    assert!(s.is_empty());
    s.append(&entries(6, 9, 3)).unwrap();
    drop(s);

    let s = open(dir);
    assert_eq!(s.entries(6, 9).unwrap(), entries(6, 9, 3));
    assert_eq!(s.snapshot_point(), (5, 2));
}

#[test]
fn refused_append_leaves_the_file_untouched() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    s.append(&entries(1, 4, 1)).unwrap();
    let len = s.log_file_len();
    assert!(matches!(
        s.append(&[entry(6, 1)]),
        Err(StoreError::NotContiguous { first: 6, .. })
    ));
    // A hole inside one batch would be cut at the next open, so it is refused up front.
    assert!(matches!(
        s.append(&[entry(4, 1), entry(6, 1)]),
        Err(StoreError::NotContiguous { first: 6, .. })
    ));
    assert_eq!(s.log_file_len(), len);
    assert_eq!(s.last_index(), 3);
    drop(s);
    let s = open(dir);
    assert_eq!(s.entries(1, 4).unwrap(), entries(1, 4, 1));
}

#[test]
fn torn_tail_mid_record_is_cut_and_the_store_keeps_working() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    let es = entries(1, 6, 1);
    s.append(&es).unwrap();
    let full = s.log_file_len();
    drop(s);

    // A crash mid-write of entry 5: only part of its record reached the file.
    let cut_at = full - record_len(&es[4]) / 2;
    OpenOptions::new()
        .write(true)
        .open(log_path(dir))
        .unwrap()
        .set_len(cut_at)
        .unwrap();

    let mut s = open(dir);
    assert_eq!(s.last_index(), 4);
    assert_eq!(s.entries(1, 5).unwrap(), es[..4].to_vec());
    let good = full - record_len(&es[4]);
    assert_eq!(s.recovery().truncated_bytes, cut_at - good);
    assert_eq!(fs::metadata(log_path(dir)).unwrap().len(), good);

    s.append(&entries(5, 8, 2)).unwrap();
    drop(s);
    let s = open(dir);
    assert_eq!(s.recovery().truncated_bytes, 0);
    assert_eq!(s.last_index(), 7);
    assert_eq!(s.entries(5, 8).unwrap(), entries(5, 8, 2));
}

#[test]
fn torn_header_and_garbage_tails_are_cut() {
    // Tails a crash can leave: part of a header, zeros (an extended but unwritten block),
    // a plausible header whose body is missing, random bytes.
    let tails: [&[u8]; 4] = [
        &[0, 0, 0],
        &[0; 64],
        &[0, 0, 0, 40, 1, 2, 3, 4, 9, 9],
        b"\xde\xad\xbe\xef garbage that is not a record at all",
    ];
    for tail in tails {
        let root = TempDir::new().unwrap();
        let dir = root.path();
        let mut s = FileStore::open(dir, SyncPolicy::Fdatasync).unwrap();
        s.append(&entries(1, 4, 1)).unwrap();
        let good = s.log_file_len();
        drop(s);
        OpenOptions::new()
            .append(true)
            .open(log_path(dir))
            .unwrap()
            .write_all(tail)
            .unwrap();

        let mut s = FileStore::open(dir, SyncPolicy::Fdatasync).unwrap();
        assert_eq!(s.recovery().truncated_bytes, tail.len() as u64, "{tail:?}");
        assert_eq!(s.last_index(), 3);
        s.append(&[entry(4, 1)]).unwrap();
        drop(s);
        let s = FileStore::open(dir, SyncPolicy::Fdatasync).unwrap();
        assert_eq!(s.recovery().truncated_bytes, 0);
        assert_eq!(s.entries(1, 5).unwrap(), entries(1, 5, 1));
        assert_eq!(s.log_file_len(), good + record_len(&entry(4, 1)));
    }
}

#[test]
fn corrupt_middle_record_cuts_the_log_there() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    let es = entries(1, 11, 1);
    s.append(&es).unwrap();
    drop(s);

    // Flip one bit in the data of entry 4: its CRC fails, though 5..10 are intact.
    let offset_4: u64 = es[..3].iter().map(record_len).sum();
    let mut bytes = fs::read(log_path(dir)).unwrap();
    bytes[(offset_4 + 8 + 17) as usize] ^= 0x01;
    fs::write(log_path(dir), &bytes).unwrap();

    let mut s = open(dir);
    assert_eq!(s.last_index(), 3, "nothing after the bad record is trusted");
    assert_eq!(s.entries(1, 4).unwrap(), es[..3].to_vec());
    assert_eq!(s.log_file_len(), offset_4);
    assert_eq!(fs::metadata(log_path(dir)).unwrap().len(), offset_4);
    s.append(&entries(4, 6, 2)).unwrap();
    drop(s);
    let s = open(dir);
    assert_eq!(s.last_index(), 5);
    assert_eq!(s.entries(4, 6).unwrap(), entries(4, 6, 2));
}

#[test]
fn record_out_of_sequence_is_cut() {
    // Splice the record of entry 5 from another log right after entry 3: valid CRC,
    // wrong index.
    let root = TempDir::new().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let mut sa = open(&a);
    sa.append(&entries(1, 4, 1)).unwrap();
    let good = sa.log_file_len();
    drop(sa);
    let mut sb = open(&b);
    sb.append(&entries(1, 6, 1)).unwrap();
    drop(sb);
    let b_bytes = fs::read(log_path(&b)).unwrap();
    let offset_5: usize = entries(1, 5, 1).iter().map(record_len).sum::<u64>() as usize;
    OpenOptions::new()
        .append(true)
        .open(log_path(&a))
        .unwrap()
        .write_all(&b_bytes[offset_5..])
        .unwrap();

    let s = open(&a);
    assert_eq!(s.last_index(), 3);
    assert_eq!(s.log_file_len(), good);
    assert_eq!(s.recovery().truncated_bytes, record_len(&entry(5, 1)));
}

#[test]
fn on_disk_format_is_the_documented_one() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    let e = Entry {
        term: 0x0102,
        index: 1,
        kind: EntryKind::Noop,
        data: Bytes::from_static(b"xyz"),
    };
    s.append(std::slice::from_ref(&e)).unwrap();
    s.save_hard_state(HardState {
        term: 9,
        voted_for: Some(3),
    })
    .unwrap();
    s.compact(1).unwrap();
    drop(s);

    let mut body = Vec::new();
    body.extend_from_slice(&0x0102u64.to_be_bytes());
    body.extend_from_slice(&1u64.to_be_bytes());
    body.push(1); // Noop
    body.extend_from_slice(b"xyz");
    let mut record = Vec::new();
    record.extend_from_slice(&(body.len() as u32).to_be_bytes());
    record.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    record.extend_from_slice(&body);
    assert_eq!(record.len() as u64, record_len(&e));

    let mut hs = Vec::new();
    hs.extend_from_slice(&9u64.to_be_bytes());
    hs.push(1);
    hs.extend_from_slice(&3u64.to_be_bytes());
    let mut meta = Vec::new();
    meta.extend_from_slice(&1u64.to_be_bytes());
    meta.extend_from_slice(&0x0102u64.to_be_bytes());
    let framed = |b: &[u8]| [&crc32fast::hash(b).to_be_bytes()[..], b].concat();
    assert_eq!(fs::read(dir.join(HARD_STATE_FILE)).unwrap(), framed(&hs));
    assert_eq!(fs::read(dir.join(META_FILE)).unwrap(), framed(&meta));
    // compact(1) discarded the whole log, so the file was rewritten empty; a record
    // written by hand after it must read back as entry 2.
    assert_eq!(fs::read(log_path(dir)).unwrap(), Vec::<u8>::new());
    let mut body2 = Vec::new();
    body2.extend_from_slice(&5u64.to_be_bytes());
    body2.extend_from_slice(&2u64.to_be_bytes());
    body2.push(0); // Normal
    body2.extend_from_slice(b"hand-made");
    let mut record2 = Vec::new();
    record2.extend_from_slice(&(body2.len() as u32).to_be_bytes());
    record2.extend_from_slice(&crc32fast::hash(&body2).to_be_bytes());
    record2.extend_from_slice(&body2);
    fs::write(log_path(dir), &record2).unwrap();

    let s = open(dir);
    assert_eq!(
        s.entries(2, 3).unwrap(),
        vec![Entry {
            term: 5,
            index: 2,
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"hand-made"),
        }]
    );
}

#[test]
fn log_ending_below_the_snapshot_point_is_emptied() {
    // Lost writes under SyncPolicy::None and a power loss can leave the meta file ahead
    // of the log. The log's records are all discarded ones then; the store must still
    // accept snapshot_index + 1 and read it back.
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    let es = entries(1, 11, 1);
    s.append(&es).unwrap();
    s.compact(3).unwrap(); // small prefix: the file keeps records 1..3
    drop(s);
    let keep = record_len(&es[0]) + 5; // record 1 and a torn piece of record 2
    OpenOptions::new()
        .write(true)
        .open(log_path(dir))
        .unwrap()
        .set_len(keep)
        .unwrap();

    let mut s = open(dir);
    assert_eq!(s.snapshot_point(), (3, 1));
    assert_eq!(s.last_index(), 3);
    assert_eq!(s.log_file_len(), 0);
    s.append(&entries(4, 6, 2)).unwrap();
    drop(s);
    let s = open(dir);
    assert_eq!(s.entries(4, 6).unwrap(), entries(4, 6, 2));
}

#[test]
fn log_starting_above_the_snapshot_point_is_refused() {
    // Records 9..10 with no snapshot point to cover 1..8 form a log with a hole: refused,
    // not guessed at.
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    s.append(&entries(1, 11, 1)).unwrap();
    s.compact(8).unwrap(); // rewrites the file to records 9 and 10
    drop(s);
    fs::remove_file(dir.join(META_FILE)).unwrap();
    let err = FileStore::open(dir, SyncPolicy::None).unwrap_err();
    assert!(
        matches!(&err, StoreError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData),
        "{err}"
    );
}

#[test]
fn damaged_hard_state_is_refused_not_reset() {
    // Forgetting a vote could let the node vote twice in one term: refuse to open.
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    s.save_hard_state(HardState {
        term: 4,
        voted_for: None,
    })
    .unwrap();
    drop(s);
    let mut bytes = fs::read(dir.join(HARD_STATE_FILE)).unwrap();
    bytes[7] ^= 0x10;
    fs::write(dir.join(HARD_STATE_FILE), &bytes).unwrap();
    let err = FileStore::open(dir, SyncPolicy::None).unwrap_err();
    assert!(
        matches!(&err, StoreError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData),
        "{err}"
    );
}

#[test]
fn leftover_temporary_files_are_ignored_and_removed() {
    // A crash between writing NAME.tmp and renaming it leaves the old NAME valid.
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = open(dir);
    s.append(&entries(1, 3, 1)).unwrap();
    let hs = HardState {
        term: 2,
        voted_for: Some(1),
    };
    s.save_hard_state(hs).unwrap();
    drop(s);
    for name in [LOG_FILE, HARD_STATE_FILE, META_FILE] {
        fs::write(dir.join(format!("{name}.tmp")), b"half-written").unwrap();
    }
    let s = open(dir);
    assert_eq!(s.hard_state(), hs);
    assert_eq!(s.entries(1, 3).unwrap(), entries(1, 3, 1));
    for name in [LOG_FILE, HARD_STATE_FILE, META_FILE] {
        assert!(!dir.join(format!("{name}.tmp")).exists());
    }
}

#[test]
fn vote_without_a_candidate_round_trips() {
    let root = TempDir::new().unwrap();
    let dir = root.path();
    let mut s = FileStore::open(dir, SyncPolicy::Fdatasync).unwrap();
    for hs in [
        HardState {
            term: 1,
            voted_for: Some(0),
        },
        HardState {
            term: u64::MAX,
            voted_for: None,
        },
    ] {
        s.save_hard_state(hs).unwrap();
        drop(s);
        s = FileStore::open(dir, SyncPolicy::Fdatasync).unwrap();
        assert_eq!(s.hard_state(), hs);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_refuses_later_writes_until_reopen() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let root = TempDir::new().unwrap();
    let dir = root.path();
    std::os::unix::fs::symlink("/dev/full", log_path(dir)).unwrap();
    let mut s = open(dir);
    let err = s.append(&entries(1, 3, 1)).unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err}");
    assert_eq!(s.last_index(), 0, "a failed append adds nothing");
    // The disk's state is unknown now: every write is refused, even one to another file.
    assert!(matches!(
        s.save_hard_state(HardState {
            term: 1,
            voted_for: None
        }),
        Err(StoreError::Io(_))
    ));
    assert!(matches!(
        s.append(&entries(1, 2, 1)),
        Err(StoreError::Io(_))
    ));
    assert_eq!(s.hard_state(), HardState::default());
    // Contract checks still answer as before.
    assert!(s.entries(1, 1).unwrap().is_empty());
    drop(s);

    // Reopening recovers; with a real log file in place writes work again.
    fs::remove_file(log_path(dir)).unwrap();
    let mut s = open(dir);
    s.append(&entries(1, 3, 1)).unwrap();
    assert_eq!(s.last_index(), 2);
}

/// One step of the workload the SIGKILL test runs: the child performs it on a FileStore,
/// the parent replays it on a MemStore to know what each step left behind.
#[derive(Clone, Debug)]
enum Op {
    Append(Vec<Entry>),
    HardState(HardState),
    Compact(u64),
}

/// A deterministic workload (appends of 1..64 entries, conflicting overwrites with a new
/// term, votes, compactions that sometimes rewrite the file), driven by the store's state.
struct Workload {
    rng: rand_chacha::ChaCha8Rng,
    term: u64,
}

impl Workload {
    fn new(seed: u64) -> Workload {
        use rand::SeedableRng;
        Workload {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            term: 1,
        }
    }

    fn next(&mut self, s: &impl LogStore) -> Op {
        use rand::Rng;
        let (snap, _) = s.snapshot_point();
        let last = s.last_index();
        let roll = self.rng.random_range(0..100);
        let batch = |rng: &mut rand_chacha::ChaCha8Rng, first: u64, n: u64, term: u64| {
            (first..first + n)
                .map(|index| {
                    let len = rng.random_range(0..200);
                    Entry {
                        term,
                        index,
                        kind: EntryKind::Normal,
                        data: Bytes::from(vec![(index % 251) as u8; len]),
                    }
                })
                .collect::<Vec<_>>()
        };
        if roll < 10 && last > snap + 1 {
            // A follower overwriting a conflicting suffix for a newer leader.
            self.term += 1;
            let first = self
                .rng
                .random_range(last.saturating_sub(5).max(snap + 1)..=last);
            let n = self.rng.random_range(1..=10);
            Op::Append(batch(&mut self.rng, first, n, self.term))
        } else if roll < 20 {
            Op::HardState(HardState {
                term: self.term,
                voted_for: Some(self.rng.random_range(1..4)),
            })
        } else if roll < 25 && last > snap + 1 {
            Op::Compact(snap + (last - snap) / 2 + self.rng.random_range(0..2))
        } else {
            let n = self.rng.random_range(1..=64);
            Op::Append(batch(&mut self.rng, last + 1, n, self.term))
        }
    }
}

fn apply(s: &mut impl LogStore, op: &Op) {
    match op {
        Op::Append(es) => s.append(es).unwrap(),
        Op::HardState(hs) => s.save_hard_state(*hs).unwrap(),
        Op::Compact(upto) => s.compact(*upto).unwrap(),
    }
}

/// Hard state, snapshot point and every entry after it.
type View = (HardState, (u64, u64), Vec<Entry>);

fn view(s: &impl LogStore) -> View {
    let (snap, _) = s.snapshot_point();
    (
        s.hard_state(),
        s.snapshot_point(),
        s.entries(snap + 1, s.last_index() + 1).unwrap(),
    )
}

/// Whether `got` is what a kill can leave while `op` runs on a store showing `before`:
/// the state before it, after it, or for an append any prefix of its batch after the cut.
fn possible_during(before: &View, op: &Op, got: &View) -> bool {
    if got == before {
        return true;
    }
    let (hs, (snap, snap_term), es) = before.clone();
    match op {
        Op::Append(batch) => {
            let keep = (batch[0].index - snap - 1) as usize;
            (0..=batch.len()).any(|j| {
                let mut log = es[..keep].to_vec();
                log.extend_from_slice(&batch[..j]);
                *got == (hs, (snap, snap_term), log)
            })
        }
        Op::HardState(new) => *got == (*new, (snap, snap_term), es),
        Op::Compact(upto) => {
            let n = (upto - snap) as usize;
            got.0 == hs && got.1 == (*upto, es[n - 1].term) && got.2 == es[n..]
        }
    }
}

/// Set in the child process of the SIGKILL test: `dir seed sync`.
const KILL_CHILD: &str = "RAFTBENCH_FILE_STORE_KILL_CHILD";

#[cfg(unix)]
#[test]
fn survives_sigkill_at_any_point() {
    if let Ok(args) = std::env::var(KILL_CHILD) {
        // The child: run the workload until killed, reporting each finished step.
        let mut args = args.split(' ');
        let (dir, seed, sync) = (args.next().unwrap(), args.next().unwrap(), args.next());
        let sync = match sync {
            Some("always") => SyncPolicy::Fdatasync,
            _ => SyncPolicy::None,
        };
        let mut s = FileStore::open(Path::new(dir), sync).unwrap();
        let mut w = Workload::new(seed.parse().unwrap());
        let mut out = std::io::stdout();
        for k in 1..=1_000_000u64 {
            let op = w.next(&s);
            apply(&mut s, &op);
            // One small write per line: atomic on a pipe, so a line is whole or absent.
            if writeln!(out, "done {k}").and_then(|_| out.flush()).is_err() {
                return; // the parent is gone
            }
        }
        return;
    }

    // Kill children at different points of their run: a few milliseconds after they
    // report a given step, while they keep going (the pipe holds thousands of lines).
    // Fewer steps under Always, where each costs a few fsyncs.
    for (round, wait_ms) in [0u64, 3, 10, 30].into_iter().enumerate() {
        for (sync, steps) in [("never", 1000), ("always", 100)] {
            kill_and_check(round as u64, sync, steps, wait_ms);
        }
    }
}

#[cfg(unix)]
fn kill_and_check(seed: u64, sync: &str, steps: u64, wait_ms: u64) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let root = TempDir::new().unwrap();
    let dir = root.path().to_str().expect("a UTF-8 temporary path");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "survives_sigkill_at_any_point",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_CHILD, format!("{dir} {seed} {sync}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut done = 0u64;
    let mut killed = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(k) = line.unwrap().strip_prefix("done ") {
            done = k.parse().unwrap();
        }
        if done >= steps && !killed {
            std::thread::sleep(Duration::from_millis(wait_ms));
            child.kill().unwrap(); // SIGKILL, wherever the child is
            killed = true;
        }
    }
    // Every line the child wrote before it died was still in the pipe and was read above.
    child.wait().unwrap();
    assert!(killed, "the child stopped before step {steps}");

    let mut model = raftbench::raft::MemStore::new();
    let mut w = Workload::new(seed);
    for _ in 0..done {
        let op = w.next(&model);
        apply(&mut model, &op);
    }
    let before = view(&model);
    let in_flight = w.next(&model);

    let s = open(root.path());
    let got = view(&s);
    assert!(
        possible_during(&before, &in_flight, &got),
        "{sync}, seed {seed}: after {done} steps and a kill during {in_flight:?}: recovered \
         snapshot {:?}, last index {}, hard state {:?}; before the step: snapshot {:?}, \
         last index {}, hard state {:?}",
        got.1,
        s.last_index(),
        got.0,
        before.1,
        model.last_index(),
        before.0
    );
    // The recovered store takes writes again.
    drop(s);
    let mut s = open(root.path());
    let last = s.last_index();
    s.append(&[entry(last + 1, u64::MAX)]).unwrap();
}
