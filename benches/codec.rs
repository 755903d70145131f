//! The wire codec alone: encoding and decoding an AppendEntries with 1, 64 and 1,024
//! entries of 64 bytes (throughput in entries), and an AppendEntriesResponse.
//!
//! Encoding goes into one reused `BytesMut`, as the transports' writer tasks do; decoding
//! starts from a `Bytes` frame, as the readers hand it over (entries are sliced, not copied).

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raftbench::codec;
use raftbench::harness::baseline::{answer, append_batch};
use raftbench::raft::message::Message;

const SIZES: [usize; 3] = [1, 64, 1_024];
const PAYLOAD: usize = 64;

fn append(n: usize) -> Message {
    append_batch(n, PAYLOAD)
}

fn response() -> Message {
    answer(&append(1))
}

fn frame(msg: &Message) -> Bytes {
    let mut buf = BytesMut::new();
    codec::encode(msg, &mut buf);
    buf.freeze()
}

fn bench_pair(c: &mut Criterion, name: &str, elements: u64, msg: &Message) {
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(elements));
    let mut buf = BytesMut::with_capacity(codec::encoded_len(msg));
    g.bench_with_input(BenchmarkId::new("encode", name), msg, |b, m| {
        b.iter(|| {
            // Cleared, not reallocated: the writer tasks reuse one buffer.
            buf.clear();
            codec::encode(black_box(m), &mut buf);
            black_box(buf.len())
        })
    });
    let f = frame(msg);
    g.bench_with_input(BenchmarkId::new("decode", name), &f, |b, f| {
        b.iter(|| codec::decode(black_box(f.clone())).expect("a valid frame decodes"))
    });
    g.finish();
}

fn codec_benches(c: &mut Criterion) {
    for n in SIZES {
        bench_pair(c, &format!("append_{n}"), n as u64, &append(n));
    }
    bench_pair(c, "append_response", 1, &response());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = codec_benches
}
criterion_main!(benches);
