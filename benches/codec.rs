//! Codec microbenchmarks (criterion): the sans-IO WebSocket layer alone,
//! without sockets or threads.
//!
//! ```sh
//! cargo bench --bench codec                 # everything (about two minutes)
//! cargo bench --bench codec -- decode       # one group (a name filter)
//! cargo bench --bench codec_ratios          # the short ratio table
//! ```
//!
//! Groups:
//! - `decode`: a masked text frame through `Decoder` (Role::Server):
//!   header parse, unmask in place, incremental UTF-8 check, copy into the
//!   message `String`. Criterion reports bytes/s; frames/s is 1 / time.
//! - `encode_server` / `encode_client`: `encode_frame` unmasked (what the
//!   server sends) and masked with a fresh key (what a client sends).
//! - `unmask_vs_copy`: `apply_mask` in place against `copy_from_slice` of a
//!   buffer of the same size, at 64 KiB and 1 MiB.
//! - `utf8`: `Utf8Validator::check` fed in 4 KiB pieces and whole, against
//!   `std::str::from_utf8`, on ASCII and on mixed text.
//!
//! The goals (unmask ≥ 0.5× copy at 64 KiB, UTF-8 ≥ 0.8× `from_utf8`) are
//! printed, not asserted, by the `codec_ratios` bench.

mod common;
use common::{KEY, ascii_text, mixed_text};
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wschat::ws::frame::encode_frame;
use wschat::ws::mask::{MaskSource, apply_mask};
use wschat::ws::utf8::Utf8Validator;
use wschat::ws::{Decoder, Event, Limits, OpCode, Role};

const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (125, "125B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn masked_text_frame(len: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(&mut frame, true, OpCode::Text, &ascii_text(len), Some(KEY));
    frame
}

fn batch_size(len: usize) -> BatchSize {
    if len >= 64 * 1024 {
        BatchSize::LargeInput
    } else {
        BatchSize::SmallInput
    }
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (len, name) in SIZES {
        let frame = masked_text_frame(len);
        let mut decoder = Decoder::new(Role::Server, Limits::LARGE);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            // Decoding unmasks in place, so every iteration gets a fresh
            // copy of the masked frame; the copy is not timed.
            b.iter_batched_ref(
                || frame.clone(),
                |input| {
                    let (used, event) = decoder.decode(input).unwrap();
                    debug_assert_eq!(used, input.len());
                    match event {
                        Some(Event::Message(m)) => black_box(m),
                        other => panic!("expected a message, got {other:?}"),
                    }
                },
                batch_size(len),
            );
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    for (group_name, masked) in [("encode_server", false), ("encode_client", true)] {
        let mut group = c.benchmark_group(group_name);
        for (len, name) in SIZES {
            let payload = ascii_text(len);
            let mut out = Vec::with_capacity(len + 14);
            let mut keys = MaskSource::new();
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    out.clear();
                    let mask = masked.then(|| keys.key());
                    encode_frame(&mut out, true, OpCode::Text, black_box(&payload), mask);
                    black_box(out.len())
                });
            });
        }
        group.finish();
    }
}

fn unmask_vs_copy(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask_vs_copy");
    for (len, name) in [(64 * 1024, "64KiB"), (1024 * 1024, "1MiB")] {
        let src = ascii_text(len);
        let mut buf = src.clone();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("apply_mask", name), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 0));
        });
        group.bench_function(BenchmarkId::new("copy_from_slice", name), |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)));
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let len = 64 * 1024;
    for (kind, text) in [("ascii", ascii_text(len)), ("mixed", mixed_text(len))] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(BenchmarkId::new("validator_4KiB_pieces", kind), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for piece in black_box(&text).chunks(4096) {
                    v.check(piece).unwrap();
                }
                assert!(v.is_complete());
            });
        });
        group.bench_function(BenchmarkId::new("validator_whole", kind), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.check(black_box(&text)).unwrap();
                assert!(v.is_complete());
            });
        });
        group.bench_function(BenchmarkId::new("std_from_utf8", kind), |b| {
            b.iter(|| std::str::from_utf8(black_box(&text)).unwrap().len());
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the machine has two cores shared with other builds.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, encode, unmask_vs_copy, utf8
}
criterion_main!(benches);
