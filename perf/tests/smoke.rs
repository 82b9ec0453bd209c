//! `weir-perf` end to end: each mode against an embedded node, short runs, real results.

use std::process::Command;

fn perf(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_weir-perf"))
        .args(args)
        .args(["--embedded", "--shards", "1", "--json", "--partitions", "2", "--record-size", "256"])
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn every_mode_runs_against_an_embedded_node_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let produce = perf(
        dir.path(),
        &[
            "produce",
            // Human units here, bare seconds for e2e below: both are taken.
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--transport",
            "tcp",
            "--baseline",
            "--baseline-bytes",
            "8388608",
        ],
    );
    assert!(produce["records"].as_u64().unwrap() > 100, "{produce}");
    assert!(produce["mb_per_s"].as_f64().unwrap() > 0.0);
    assert!(produce["latency"]["p99_us"].as_u64().unwrap() >= produce["latency"]["p50_us"].as_u64().unwrap());
    assert!(produce["disk"]["write_mb_s"].as_f64().unwrap() > 0.0);
    assert!(produce["ratio_to_disk"].as_f64().unwrap() > 0.0);

    // Open loop at a modest rate over QUIC: about rate × duration records are measured.
    let hgrm = dir.path().join("e2e.hgrm");
    let e2e = perf(
        dir.path(),
        &[
            "e2e",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--rate",
            "2000",
            "--acks",
            "all",
            "--hgrm",
            hgrm.to_str().unwrap(),
        ],
    );
    assert_eq!(e2e["acks"], "all", "{e2e}");
    let records = e2e["records"].as_u64().unwrap();
    assert!((1500..=2500).contains(&records), "{e2e}");
    assert!(e2e["latency"]["count"].as_u64().unwrap() == records);
    assert!(std::fs::read_to_string(&hgrm).unwrap().contains("Total count"));

    // Catch-up consume fills the empty topic first and reads it all.
    let consume = perf(dir.path(), &["consume", "--fill-bytes", "2000000"]);
    assert_eq!(consume["records"].as_u64().unwrap(), 2_000_000 / 256, "{consume}");
    // Each fetch that brought records is timed: at least one, at most one per record.
    let fetches = consume["latency"]["count"].as_u64().unwrap();
    assert!((1..=2_000_000 / 256).contains(&fetches), "{consume}");

    // Two result files, one plot.
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    std::fs::write(&a, produce.to_string()).unwrap();
    std::fs::write(&b, e2e.to_string()).unwrap();
    let svg = dir.path().join("cmp.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_weir-perf"))
        .args(["plot", a.to_str().unwrap(), b.to_str().unwrap(), "-o", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("produce tcp") && text.contains("e2e quic"));

    // The network baselines: TCP, QUIC served by quinn on tokio and by the node's own driver
    // (with quinn on tokio sending, and with the node's driver at both ends).
    let out = Command::new(env!("CARGO_BIN_EXE_weir-perf"))
        .args(["baseline", "net", "--bulk-bytes", "8388608", "--echoes", "200", "--rounds", "1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> =
        nets.as_array().unwrap().iter().map(|n| n["transport"].as_str().unwrap()).collect();
    assert_eq!(names, ["tcp", "quic-tokio", "quic-native", "quic-native-both"]);
    for n in nets.as_array().unwrap() {
        assert!(n["bulk_mb_s"].as_f64().unwrap() > 0.0 && n["answers_mb_s"].as_f64().unwrap() > 0.0, "{n}");
        assert!(n["rtt_p50_us"].as_u64().unwrap() > 0, "{n}");
    }

    // One transport alone, as asked.
    let out = Command::new(env!("CARGO_BIN_EXE_weir-perf"))
        .args(["baseline", "net", "--bulk-bytes", "8388608", "--echoes", "10", "--rounds", "1"])
        .args(["--only", "quic-native-both", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(nets.as_array().unwrap().len(), 1);
    assert_eq!(nets[0]["transport"], "quic-native-both");

    // A bad flag is a usage error; a bad rate names the problem.
    let out = Command::new(env!("CARGO_BIN_EXE_weir-perf")).args(["e2e", "--rate", "fast"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate"));
}
