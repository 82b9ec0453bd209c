"""Prints the BENCHMARKS.md tables from the JSON results of bench.sh."""
import glob, json, os, sys

out = sys.argv[1]
runs = {os.path.basename(p)[:-5]: json.load(open(p)) for p in glob.glob(os.path.join(out, "*.json"))}

print("| produce | transport | flush | batch | MB/s | raw disk write (same run) | ratio | ack p50 / p99 / p99.9 ms |")
print("|---|---|---|---|---|---|---|---|")
for flush in ["fsync", "interval"]:
    for t in ["quic", "tcp"]:
        for b in [65536, 1048576]:
            r = runs.get(f"produce-{t}-{flush}-{b}")
            if not r:
                continue
            l = r["latency"]
            print(f"| 1 KiB records | {t} | {flush} | {b // 1024} KiB | {r['mb_per_s']:.0f} | "
                  f"{r['disk']['write_mb_s']:.0f} MB/s ({r['disk']['block_bytes'] // 1024} KiB blocks"
                  f"{' + fdatasync' if r['disk']['fsync_each'] else ''}) | {r['ratio_to_disk']:.2f} | "
                  f"{l['p50_us'] / 1000:.1f} / {l['p99_us'] / 1000:.1f} / {l['p999_us'] / 1000:.1f} |")
print()
print("| consume (catch-up, from disk) | transport | MB/s | raw disk read (same run) | ratio |")
print("|---|---|---|---|---|")
for t in ["quic", "tcp"]:
    r = runs.get(f"consume-{t}")
    if r:
        print(f"| {r['records']} records of 1 KiB | {t} | {r['mb_per_s']:.0f} | {r['disk']['read_mb_s']:.0f} MB/s | {r['ratio_to_disk']:.2f} |")
print()
print("| e2e | transport | rate | p50 | p90 | p99 | p99.9 | p99.99 | max (ms) |")
print("|---|---|---|---|---|---|---|---|---|")
for t in ["quic", "tcp"]:
    for pct in [10, 50]:
        r = runs.get(f"e2e-{t}-{pct}")
        if r:
            l = r["latency"]
            ms = lambda v: f"{v / 1000:.2f}"
            print(f"| {pct} % of max | {t} | {r['rate_records_per_s'] * r['record_size'] / 1e6:.0f} MB/s | "
                  f"{ms(l['p50_us'])} | {ms(l['p90_us'])} | {ms(l['p99_us'])} | {ms(l['p999_us'])} | "
                  f"{ms(l['p9999_us'])} | {ms(l['max_us'])} |")
net = runs.get("baseline-net")
if net:
    print()
    for n in net:
        print(f"- raw {n['transport']} loopback: bulk {n['bulk_mb_s']:.0f} MB/s, 64 B round trip p50 {n['rtt_p50_us']} µs, p99 {n['rtt_p99_us']} µs")
