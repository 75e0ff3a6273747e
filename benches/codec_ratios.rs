//! The codec's headline numbers in one short table, timed with
//! `std::time::Instant`: median of several runs, each run long enough
//! (about 20 ms) that timer overhead does not matter.
//!
//! ```sh
//! cargo bench --bench codec_ratios
//! ```
//!
//! Prints frames/s and GB/s for decode and encode at each payload size, then
//! the ratios against the standard library that the goals are stated in:
//! unmask/copy at 64 KiB (goal ≥ 0.5) and UTF-8 validator/`from_utf8`
//! (goal ≥ 0.8). The goals are printed, not asserted: a loaded machine
//! should not fail a build.

mod common;
use common::{KEY, ascii_text, mixed_text};
use std::hint::black_box;
use std::time::{Duration, Instant};

use wschat::ws::frame::encode_frame;
use wschat::ws::mask::{MaskSource, apply_mask};
use wschat::ws::utf8::Utf8Validator;
use wschat::ws::{Decoder, Event, Limits, OpCode, Role};

const RUNS: usize = 21;
const RUN_TIME: Duration = Duration::from_millis(20);

/// `text` cut into pieces of at most `size` bytes, each ending at a
/// character boundary.
fn char_pieces(text: &[u8], size: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while end < rest.len() && rest[end] & 0xC0 == 0x80 {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// How many calls of `f` fill one run.
fn calibrate(f: &mut dyn FnMut()) -> u64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let took = start.elapsed();
        if took >= RUN_TIME / 4 {
            let per = took.as_secs_f64() / iters as f64;
            return ((RUN_TIME.as_secs_f64() / per) as u64).max(1);
        }
        iters *= 4;
    }
}

/// Median nanoseconds per call of each of `fs`. The runs take turns (one
/// run of each, then again), so a change in the machine's load during the
/// measurement hits every candidate alike and their ratio stays fair.
fn interleaved(fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let iters: Vec<u64> = fs.iter_mut().map(|f| calibrate(*f)).collect();
    let mut runs = vec![Vec::with_capacity(RUNS); fs.len()];
    for _ in 0..RUNS {
        for (i, f) in fs.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..iters[i] {
                f();
            }
            runs[i].push(start.elapsed().as_nanos() as f64 / iters[i] as f64);
        }
    }
    runs.into_iter().map(median).collect()
}

/// Median nanoseconds per call of `f`.
fn ns_per_iter(mut f: impl FnMut()) -> f64 {
    interleaved(&mut [&mut f])[0]
}

/// Median nanoseconds to decode one masked text frame of `len` bytes. The
/// decoder unmasks in place, so each run decodes a batch of fresh copies
/// prepared before the clock starts.
fn decode_ns(len: usize) -> f64 {
    let mut frame = Vec::new();
    encode_frame(&mut frame, true, OpCode::Text, &ascii_text(len), Some(KEY));
    let batch = (8 * 1024 * 1024 / frame.len()).clamp(8, 20_000);
    let mut decoder = Decoder::new(Role::Server, Limits::LARGE);
    let runs = (0..RUNS)
        .map(|_| {
            let mut inputs: Vec<Vec<u8>> = (0..batch).map(|_| frame.clone()).collect();
            let start = Instant::now();
            for input in &mut inputs {
                match decoder.decode(input) {
                    Ok((_, Some(Event::Message(m)))) => {
                        black_box(m);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    median(runs)
}

fn encode_ns(len: usize, masked: bool) -> f64 {
    let payload = ascii_text(len);
    let mut out = Vec::with_capacity(len + 14);
    let mut keys = MaskSource::new();
    ns_per_iter(|| {
        out.clear();
        let mask = masked.then(|| keys.key());
        encode_frame(&mut out, true, OpCode::Text, black_box(&payload), mask);
        black_box(out.len());
    })
}

fn gbps(bytes: usize, ns: f64) -> f64 {
    bytes as f64 / ns
}

fn rate(ns: f64) -> String {
    let per_s = 1e9 / ns;
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0} /s")
    }
}

fn verdict(ratio: f64, goal: f64) -> &'static str {
    if ratio >= goal {
        "meets goal"
    } else {
        "BELOW goal"
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it, where timing runs would only cost CI time.
    if !std::env::args().any(|a| a == "--bench") {
        let d = decode_ns(125);
        assert!(d.is_finite() && d > 0.0, "decode timing failed");
        println!(
            "codec_ratios: smoke run only; `cargo bench --bench codec_ratios` prints the table"
        );
        return;
    }
    println!("codec throughput (median of {RUNS} runs)");
    println!(
        "{:>7} | {:>12} {:>9} | {:>12} {:>9} | {:>12} {:>9}",
        "payload", "decode", "GB/s", "enc server", "GB/s", "enc client", "GB/s"
    );
    for (len, name) in [
        (16, "16 B"),
        (125, "125 B"),
        (1024, "1 KiB"),
        (64 * 1024, "64 KiB"),
        (1024 * 1024, "1 MiB"),
    ] {
        let d = decode_ns(len);
        let s = encode_ns(len, false);
        let c = encode_ns(len, true);
        println!(
            "{name:>7} | {:>12} {:>9.2} | {:>12} {:>9.2} | {:>12} {:>9.2}",
            rate(d),
            gbps(len, d),
            rate(s),
            gbps(len, s),
            rate(c),
            gbps(len, c)
        );
    }

    println!();
    println!("ratios (higher is better; 1.00 = as fast as the std baseline)");
    for (len, name, goal) in [
        (64 * 1024, "64 KiB", Some(0.5)),
        (1024 * 1024, "1 MiB", None),
    ] {
        let src = ascii_text(len);
        let mut buf = src.clone();
        let mut dst = src.clone();
        let times =
            interleaved(
                &mut [&mut || apply_mask(black_box(&mut buf), KEY, 0), &mut || {
                    black_box(&mut dst).copy_from_slice(black_box(&src))
                }],
            );
        let (mask, copy) = (times[0], times[1]);
        let ratio = copy / mask;
        println!(
            "  unmask/copy at {name:<6} = {ratio:.2}   (apply_mask {:.1} GB/s, copy_from_slice {:.1} GB/s){}",
            gbps(len, mask),
            gbps(len, copy),
            goal.map(|g| format!("   goal ≥ {g}: {}", verdict(ratio, g)))
                .unwrap_or_default()
        );
    }
    let len = 64 * 1024;
    for (kind, text) in [("ascii", ascii_text(len)), ("mixed", mixed_text(len))] {
        let text = &text[..];
        let validator_in = |size: usize| {
            move || {
                let mut v = Utf8Validator::new();
                let mut ok = true;
                for piece in black_box(text).chunks(size) {
                    ok &= v.check(piece).is_ok();
                }
                black_box(ok && v.is_complete());
            }
        };
        // The cost of the split itself: std alone on 4 KiB pieces, cut at
        // character boundaries so that each piece is valid on its own.
        let boundaries = char_pieces(text, 4096);
        let times = interleaved(&mut [
            &mut || {
                black_box(std::str::from_utf8(black_box(text)).is_ok());
            },
            &mut || {
                let mut v = Utf8Validator::new();
                black_box(v.check(black_box(text)).is_ok() && v.is_complete());
            },
            // The decoder feeds the validator one socket read at a time (4 KiB).
            &mut validator_in(4096),
            &mut validator_in(16 * 1024),
            &mut || {
                let mut n = 0;
                for piece in black_box(&boundaries) {
                    n += std::str::from_utf8(piece).map_or(0, str::len);
                }
                black_box(n);
            },
        ]);
        let [std, whole, pieces, pieces_16k, std_pieces] = times[..] else {
            unreachable!()
        };
        println!(
            "  utf8/from_utf8 ({kind}) = {:.2} whole, {:.2} in 4 KiB pieces, {:.2} in 16 KiB pieces   \
             (from_utf8 {:.1} GB/s; from_utf8 itself on 4 KiB pieces: {:.2})   goal ≥ 0.8: {}",
            std / whole,
            std / pieces,
            std / pieces_16k,
            gbps(text.len(), std),
            std / std_pieces,
            verdict((std / whole).min(std / pieces), 0.8)
        );
    }
}
