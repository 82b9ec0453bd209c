//! A panic on a shard thread ends the process with the fatal exit status and a clear message;
//! a panic elsewhere does not. The test runs itself as a child process to watch it exit.

use std::process::Command;
use weir_node::fatal::{FATAL_EXIT_CODE, SHARD_THREAD_PREFIX, install_hook};

const CHILD: &str = "WEIR_FATAL_TEST_CHILD";
const NAME: &str = "a_panicking_shard_ends_the_process";

#[test]
fn a_panicking_shard_ends_the_process() {
    if std::env::var_os(CHILD).is_some() {
        install_hook();
        let other = std::thread::Builder::new().name("client".into()).spawn(|| panic!("not a shard"));
        assert!(other.unwrap().join().is_err(), "a panic off the shards is reported, not fatal");
        let shard = std::thread::Builder::new()
            .name(format!("{SHARD_THREAD_PREFIX}3"))
            .spawn(|| panic!("broken invariant"))
            .unwrap();
        let _ = shard.join();
        // Not reached: the hook ended the process.
        std::process::exit(0);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(FATAL_EXIT_CODE), "child stderr: {stderr}");
    assert!(stderr.contains("not a shard"), "{stderr}");
    assert!(stderr.contains("broken invariant"), "{stderr}");
    assert!(stderr.contains("weir: fatal: shard-3 panicked"), "{stderr}");
}
