//! CPU cost of the record-batch format: building and sealing a batch (what a producer does),
//! validating it (what a leader does once per produce request), its CRC32C alone (what every
//! read of stored batches does), and iterating its records (what a consumer does).
//!
//! Records have 8-byte keys and 1 KiB values; a batch is filled until it reaches 64 KiB or 1 MiB.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use weir_benches::{fill, full_batch, value_of};
use weir_log::batch::header::compute_crc;
use weir_log::batch::{BatchBuilder, BatchView, ProducerStamp};

const VALUE_BYTES: usize = 1024;
const SIZES: [(&str, usize); 2] = [("64KiB", 64 << 10), ("1MiB", 1 << 20)];

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    let value = value_of(VALUE_BYTES);

    for (label, batch_bytes_max) in SIZES {
        let sealed = full_batch(batch_bytes_max, VALUE_BYTES);
        let count = sealed.header().record_count as u64;
        let bytes = sealed.as_bytes();
        group.throughput(Throughput::Bytes(bytes.len() as u64));

        group.bench_function(BenchmarkId::new("build", label), |b| {
            b.iter(|| {
                let mut builder = BatchBuilder::new(batch_bytes_max);
                assert_eq!(fill(&mut builder, &value, count), count);
                builder.seal(ProducerStamp::default())
            })
        });

        // What a producer does batch after batch: one builder, its columns' memory reused.
        let mut builder = BatchBuilder::new(batch_bytes_max);
        group.bench_function(BenchmarkId::new("build_reuse", label), |b| {
            b.iter(|| {
                assert_eq!(fill(&mut builder, &value, count), count);
                builder.seal_reset(ProducerStamp::default())
            })
        });

        group.bench_function(BenchmarkId::new("validate", label), |b| {
            b.iter(|| {
                BatchView::validate(black_box(bytes), usize::MAX)
                    .expect("a sealed batch is valid")
                    .record_count()
            })
        });

        group.bench_function(BenchmarkId::new("crc", label), |b| b.iter(|| compute_crc(black_box(bytes))));

        if batch_bytes_max == 1 << 20 {
            let view = BatchView::validate(bytes, usize::MAX).expect("a sealed batch is valid");
            group.bench_function(BenchmarkId::new("iterate", label), |b| {
                b.iter(|| black_box(&view).records().map(|r| r.value.map_or(0, <[u8]>::len)).sum::<usize>())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
