//! MemStorage is at least as unkind as a real disk: directory entries need `sync_dir`, sizes
//! need a sync, and handles outlive the names they were opened by.

use futures::executor::block_on;
use std::rc::Rc;
use weir_log::storage::mem::{CrashMode, MemFile, MemStorage};
use weir_log::storage::{Storage, StorageFile};

/// Writes `fill` over `blocks` 4 KiB blocks at the start of the file.
async fn write_blocks(f: &MemFile, blocks: usize, fill: u8) {
    let mut buf = f.alloc(blocks * 4096);
    buf.as_mut().fill(fill);
    assert_eq!(f.write_at(Rc::new(buf), 0).await.unwrap(), blocks * 4096);
}

async fn names(st: &MemStorage) -> Vec<String> {
    let mut names = st.list().await.unwrap();
    names.sort();
    names
}

#[test]
fn a_synced_file_created_without_sync_dir_is_lost_at_a_crash() {
    block_on(async {
        for mode in [CrashMode::LoseUnsynced, CrashMode::Torn { seed: 7 }] {
            let st = MemStorage::new();
            let f = st.open("a", true).await.unwrap();
            write_blocks(&f, 1, 1).await;
            f.sync().await.unwrap();
            // Torn mode may keep the creation (by the seed); a clean loss never does.
            st.crash(mode);
            if mode == CrashMode::LoseUnsynced {
                assert!(names(&st).await.is_empty());
                assert!(st.open("a", false).await.is_err());
            } else {
                assert!(st.contents("a").is_none_or(|c| c == vec![1u8; 4096]));
            }
        }
    });
}

#[test]
fn a_file_created_and_synced_with_sync_dir_survives() {
    block_on(async {
        let st = MemStorage::new();
        let f = st.open("a", true).await.unwrap();
        write_blocks(&f, 2, 9).await;
        f.sync().await.unwrap();
        st.sync_dir().await.unwrap();
        st.crash(CrashMode::LoseUnsynced);
        assert_eq!(names(&st).await, ["a"]);
        assert_eq!(st.contents("a").unwrap(), vec![9u8; 8192]);
        // The old handle died with the process.
        assert!(f.read_at(0, 4096).await.is_err());
    });
}

#[test]
fn a_removal_without_sync_dir_is_undone_by_a_crash() {
    block_on(async {
        let st = MemStorage::new();
        let f = st.open("a", true).await.unwrap();
        write_blocks(&f, 1, 3).await;
        f.sync().await.unwrap();
        st.sync_dir().await.unwrap();
        // Unsynced data written after the sync goes; the durable contents come back.
        write_blocks(&f, 2, 4).await;
        st.remove("a").await.unwrap();
        assert!(names(&st).await.is_empty());
        st.crash(CrashMode::LoseUnsynced);
        assert_eq!(names(&st).await, ["a"]);
        assert_eq!(st.contents("a").unwrap(), vec![3u8; 4096]);

        st.remove("a").await.unwrap();
        st.sync_dir().await.unwrap();
        st.crash(CrashMode::LoseUnsynced);
        assert!(names(&st).await.is_empty());
    });
}

#[test]
fn a_handle_on_a_removed_file_keeps_its_file() {
    block_on(async {
        let st = MemStorage::new();
        let old = st.open("a", true).await.unwrap();
        write_blocks(&old, 1, 5).await;
        st.remove("a").await.unwrap();
        assert!(st.open("a", false).await.is_err());
        assert_eq!(&old.read_at(0, 4096).await.unwrap()[..], &[5u8; 4096][..]);
        // A new file under the same name is another file.
        let new = st.open("a", true).await.unwrap();
        assert_eq!(new.size().await.unwrap(), 0);
        write_blocks(&old, 2, 6).await;
        assert_eq!(old.size().await.unwrap(), 8192);
        assert_eq!(new.size().await.unwrap(), 0);
        assert_eq!(st.contents("a").unwrap(), Vec::<u8>::new());
        old.sync().await.unwrap();
    });
}

#[test]
fn a_size_change_is_durable_after_the_file_sync() {
    block_on(async {
        let st = MemStorage::new();
        let f = st.open("a", true).await.unwrap();
        st.sync_dir().await.unwrap();
        write_blocks(&f, 2, 1).await;
        f.sync().await.unwrap();
        f.truncate(4096).await.unwrap();
        f.allocate(16384).await.unwrap();
        st.crash(CrashMode::LoseUnsynced);
        assert_eq!(st.contents("a").unwrap(), vec![1u8; 8192], "neither size change was synced");

        let f = st.open("a", false).await.unwrap();
        f.truncate(4096).await.unwrap();
        f.sync().await.unwrap();
        st.crash(CrashMode::LoseUnsynced);
        assert_eq!(st.contents("a").unwrap(), vec![1u8; 4096]);
    });
}

#[test]
fn a_torn_crash_keeps_directory_changes_in_order() {
    block_on(async {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let st = MemStorage::new();
            for name in ["a", "b"] {
                st.open(name, true).await.unwrap();
            }
            st.sync_dir().await.unwrap();
            st.remove("a").await.unwrap();
            st.remove("b").await.unwrap();
            st.open("c", true).await.unwrap();
            st.crash(CrashMode::Torn { seed });
            let left = names(&st).await.concat();
            assert!(["ab", "b", "", "c"].contains(&left.as_str()), "seed {seed}: {left} is not a prefix");
            outcomes.insert(left);
        }
        assert_eq!(outcomes.len(), 4, "every prefix occurs: {outcomes:?}");
    });
}

/// A rename replaces its target atomically and, like other directory changes, is durable only
/// after `sync_dir`: a crash before it leaves both names as they were, and a torn crash keeps
/// the directory changes in order, so a later change never survives without the rename.
#[test]
fn a_rename_is_atomic_and_durable_after_sync_dir() {
    block_on(async {
        let setup = || async {
            let st = MemStorage::new();
            for (name, fill) in [("old", 1u8), ("new", 2)] {
                let f = st.open(name, true).await.unwrap();
                write_blocks(&f, 1, fill).await;
                f.sync().await.unwrap();
            }
            st.sync_dir().await.unwrap();
            st
        };
        let st = setup().await;
        let kept = st.open("old", false).await.unwrap();
        st.rename("new", "old").await.unwrap();
        assert_eq!(names(&st).await, ["old"]);
        assert_eq!(st.contents("old").unwrap(), vec![2u8; 4096]);
        // A handle of the replaced file still reads it.
        assert_eq!(kept.read_at(0, 4096).await.unwrap()[0], 1);
        st.crash(CrashMode::LoseUnsynced);
        assert_eq!(names(&st).await, ["new", "old"], "undone without sync_dir");
        assert_eq!(st.contents("old").unwrap(), vec![1u8; 4096]);

        let st = setup().await;
        st.rename("new", "old").await.unwrap();
        st.sync_dir().await.unwrap();
        st.crash(CrashMode::LoseUnsynced);
        assert_eq!(names(&st).await, ["old"]);
        assert_eq!(st.contents("old").unwrap(), vec![2u8; 4096]);

        for seed in 0..16 {
            let st = setup().await;
            st.rename("new", "old").await.unwrap();
            st.remove("old").await.unwrap();
            st.crash(CrashMode::Torn { seed });
            let got = names(&st).await;
            assert!(got == ["new", "old"] || got == ["old"] || got.is_empty(), "seed {seed}: {got:?}");
            if got == ["old"] {
                assert_eq!(st.contents("old").unwrap(), vec![2u8; 4096], "seed {seed}");
            }
        }
    });
}
