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

use std::hint::black_box;
use std::time::{Duration, Instant};

use wschat::ws::frame::encode_frame;
use wschat::ws::mask::{MaskSource, apply_mask};
use wschat::ws::utf8::Utf8Validator;
use wschat::ws::{Decoder, Event, Limits, OpCode, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const RUNS: usize = 15;
const RUN_TIME: Duration = Duration::from_millis(20);

fn ascii_text(len: usize) -> Vec<u8> {
    let line = b"The quick brown fox jumps over the lazy dog. 0123456789\n";
    line.iter().copied().cycle().take(len).collect()
}

fn mixed_text(len: usize) -> Vec<u8> {
    let line = "Grüße, café! Καλημέρα κόσμε. 你好，世界。こんにちは 😀🎉🚀 ok\n";
    let mut text = String::with_capacity(len + line.len());
    while text.len() < len {
        text.push_str(line);
    }
    let mut end = len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.into_bytes()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median nanoseconds per call of `f`.
fn ns_per_iter(mut f: impl FnMut()) -> f64 {
    // Calibrate: how many calls fill one run.
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let took = start.elapsed();
        if took >= RUN_TIME / 4 {
            let per = took.as_secs_f64() / iters as f64;
            iters = ((RUN_TIME.as_secs_f64() / per) as u64).max(1);
            break;
        }
        iters *= 4;
    }
    let runs = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    median(runs)
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
        let mask = ns_per_iter(|| apply_mask(black_box(&mut buf), KEY, 0));
        let copy = ns_per_iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)));
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
        let std = ns_per_iter(|| {
            black_box(std::str::from_utf8(black_box(&text)).is_ok());
        });
        let whole = ns_per_iter(|| {
            let mut v = Utf8Validator::new();
            black_box(v.check(black_box(&text)).is_ok() && v.is_complete());
        });
        let pieces = ns_per_iter(|| {
            let mut v = Utf8Validator::new();
            let mut ok = true;
            for piece in black_box(&text).chunks(4096) {
                ok &= v.check(piece).is_ok();
            }
            black_box(ok && v.is_complete());
        });
        // The cost of the split itself: std alone on the same 4 KiB pieces
        // (cut where they cut, so it only works on ASCII).
        let std_pieces = ns_per_iter(|| {
            let mut n = 0;
            for piece in black_box(&text).chunks(4096) {
                n += std::str::from_utf8(piece).map_or(0, str::len);
            }
            black_box(n);
        });
        println!(
            "  utf8/from_utf8 ({kind}) = {:.2} whole, {:.2} in 4 KiB pieces   (from_utf8 {:.1} GB/s; from_utf8 on 4 KiB pieces {:.2}x)   goal ≥ 0.8: {}",
            std / whole,
            std / pieces,
            gbps(text.len(), std),
            std / std_pieces,
            verdict((std / whole).min(std / pieces), 0.8)
        );
    }
}
