//! Conversion throughput, printed, not asserted (speed targets never go in tests). Run with
//! `cargo test -p weir-kafka --release --test throughput -- --ignored --nocapture`.

mod common;

use common::{NO_STAMP, TRecord, kafka_batch};
use std::time::Instant;
use weir_kafka::batch::{
    Codec, ConvertLimits, kafka_to_stored, kafka_to_weir, native_section, weir_to_kafka,
};

#[test]
#[ignore = "prints throughput; run in release"]
fn conversion_throughput() {
    let input: Vec<TRecord> = (0..1000)
        .map(|i| TRecord {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![(i % 251) as u8; 200]),
            headers: vec![(b"trace".to_vec(), Some(b"abcdef".to_vec()))],
            timestamp: 1_700_000_000_000 + i,
        })
        .collect();
    let limits = ConvertLimits::new(4 << 20);
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
        let kafka = kafka_batch(&input, codec, NO_STAMP);
        let rounds = 300;
        let started = Instant::now();
        let mut weir = Vec::new();
        for _ in 0..rounds {
            weir = kafka_to_weir(&kafka, &limits).unwrap();
        }
        let to_weir = started.elapsed();
        let started = Instant::now();
        let mut out = Vec::with_capacity(kafka.len() * 2);
        for _ in 0..rounds {
            out.clear();
            weir_to_kafka(weir[0].batch.as_bytes(), &mut out).unwrap();
        }
        let to_kafka = started.elapsed();
        let mb = (weir[0].batch.len() * rounds) as f64 / 1e6;
        println!(
            "{codec:?}: kafka_to_weir {:.0} MB/s, weir_to_kafka {:.0} MB/s (Weir bytes, 1000 records of ~220 B)",
            mb / to_weir.as_secs_f64(),
            mb / to_kafka.as_secs_f64()
        );
        // Kept as sent: produce walks the records (decompressing), a Kafka fetch rebuilds the
        // header and copies the section, a native fetch converts. Rated by the same bytes.
        let started = Instant::now();
        let mut kept = Vec::new();
        for _ in 0..rounds {
            kept = kafka_to_stored(&kafka, &limits).unwrap();
        }
        let stored = started.elapsed();
        assert!(kept[0].batch.header().kafka_fields().is_some());
        let started = Instant::now();
        for _ in 0..rounds {
            out.clear();
            weir_to_kafka(kept[0].batch.as_bytes(), &mut out).unwrap();
        }
        let rebuilt = started.elapsed();
        let started = Instant::now();
        for _ in 0..rounds {
            native_section(kept[0].batch.as_bytes(), &ConvertLimits::STORED, usize::MAX).unwrap();
        }
        let native = started.elapsed();
        println!(
            "{codec:?} kept as sent: kafka_to_stored {:.0} MB/s, Kafka fetch {:.0} MB/s, native fetch {:.0} MB/s",
            mb / stored.as_secs_f64(),
            mb / rebuilt.as_secs_f64(),
            mb / native.as_secs_f64()
        );
    }
}
