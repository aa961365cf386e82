use super::*;
use std::time::Duration;

fn ring(cap: usize, max: u64) -> Ring {
    let control = Arc::new(Control::new(1).unwrap());
    let r = Ring::new(cap, max, control, 0).unwrap();
    r.allow_drops();
    r
}

impl Ring {
    fn push_t(&self, payload: &[u8], drop_oldest: bool) -> Pushed {
        let control = self.control.clone();
        self.push(payload, drop_oldest, &control)
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `len` bytes (at least 8): the sequence number, then a pattern derived from it.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = seq.to_le_bytes().to_vec();
    v.extend((8..len.max(8)).map(|i| (seq as usize * 31 + i) as u8));
    v
}

fn seq_of(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[..8].try_into().unwrap())
}

#[test]
fn random_sizes_round_trip_in_order_across_wraps() {
    let r = ring(4096, u64::MAX);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut buf = Vec::new();
    while got < 20_000 {
        // Push while there is surely room (the ring never blocks in this test).
        let burst = rng.next() % 8;
        for _ in 0..burst {
            let len = 8 + (rng.next() % 292) as usize;
            let s = r.stats();
            let used = s.pending as usize * (REC_HDR + 307);
            if used + 2 * (REC_HDR + 307) > 4096 {
                break;
            }
            assert_eq!(r.push_t(&payload(sent, len), false), Pushed::Ok);
            sent += 1;
        }
        let pops = rng.next() % 8;
        for _ in 0..pops {
            if !r.pop(&mut buf) {
                assert_eq!(got, sent, "empty while samples are pending");
                break;
            }
            let want_len = buf.len();
            assert_eq!(buf, payload(got, want_len), "record {got} corrupted");
            got += 1;
        }
    }
    let s = r.stats();
    assert_eq!(s.pushed, sent);
    assert_eq!(s.consumed, got);
    assert_eq!(s.pending, sent - got);
}

#[test]
fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
    let r = ring(4096, 10);
    for i in 0..100u64 {
        r.push_t(&payload(i, 16), true);
    }
    let s = r.stats();
    assert_eq!((s.pushed, s.dropped, s.pending), (100, 90, 10));
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    while r.pop(&mut buf) {
        seen.push(buf[0]);
    }
    let want: Vec<u8> = (90..100u8).collect();
    assert_eq!(seen, want);
}

#[test]
fn drop_oldest_by_bytes_across_wraps() {
    let r = ring(4096, u64::MAX);
    let mut buf = Vec::new();
    for i in 0..1000u64 {
        r.push_t(&payload(i, 200), true);
        if i % 7 == 0 {
            r.pop(&mut buf);
        }
    }
    let s = r.stats();
    assert_eq!(s.pushed, s.consumed + s.dropped + s.pending);
    // Whatever is left is the newest records, in order.
    let mut last = None;
    while r.pop(&mut buf) {
        let seq = seq_of(&buf);
        assert_eq!(buf, payload(seq, 200), "record {seq} corrupted");
        assert!(last.is_none_or(|l| seq > l));
        last = Some(seq);
    }
    assert_eq!(last, Some(999));
}

/// Item 9 of issue 9: while the receiver reads the oldest record, a drop-oldest sender
/// must neither drop nor overwrite it; it drops its own new samples instead, counted.
#[test]
fn a_record_being_read_is_never_dropped_or_overwritten() {
    // 9 records of 448 bytes fill the 4 KiB ring: any further push must reuse the bytes
    // of record 0 unless it is protected.
    let r = ring(4096, u64::MAX);
    for i in 0..9u64 {
        assert_eq!(r.push_t(&payload(i, 440), true), Pushed::Ok);
    }
    let mut buf = Vec::new();
    let mut during = Vec::new();
    let got = r.pop_with(&mut buf, || {
        if during.is_empty() {
            for i in 9..60u64 {
                during.push(r.push_t(&payload(i, 440), true));
            }
        }
    });
    assert!(got);
    assert_eq!(seq_of(&buf), 0, "the record being read was dropped");
    assert_eq!(
        buf,
        payload(0, 440),
        "the record being read was overwritten"
    );
    assert!(
        during.iter().all(|p| *p == Pushed::DroppedNewest(0)),
        "{during:?}"
    );
    let s = r.stats();
    assert_eq!((s.pushed, s.consumed, s.dropped, s.pending), (60, 1, 51, 8));
    // The rest come out intact and in order.
    for want in 1..9u64 {
        assert!(r.pop(&mut buf));
        assert_eq!(buf, payload(want, 440));
    }
    assert!(!r.pop(&mut buf));
}

/// A sample larger than the ring can ever hold is refused as such, not as "receiver gone".
#[test]
fn an_oversize_sample_is_too_large_not_receiver_gone() {
    let r = ring(4096, 16);
    let big = vec![0u8; r.max_payload() + 1];
    assert_eq!(r.push_t(&big, false), Pushed::TooLarge);
    assert_eq!(r.push_t(&big, true), Pushed::TooLarge);
    assert_eq!(r.stats().undeliverable, 2);
}

/// The drop-oldest path under real concurrency: a sender thread pushing millions of
/// records of varying sizes into a small ring, a receiver thread reading them. Every
/// record received is intact and newer than the previous one, and the counts add up.
#[test]
fn drop_oldest_stress_every_received_record_is_intact() {
    const N: u64 = 2_000_000;
    let r = ring(4096, 32);
    let len_of = |seq: u64| 8 + ((seq.wrapping_mul(0x9e3779b97f4a7c15) >> 57) as usize) * 3;
    let tx = r.clone();
    let sender = std::thread::spawn(move || {
        let mut newest = 0u64;
        let mut buf = Vec::with_capacity(512);
        for seq in 0..N {
            buf.clear();
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend((8..len_of(seq)).map(|i| (seq as usize * 31 + i) as u8));
            if let Pushed::DroppedNewest(_) = tx.push_t(&buf, true) {
                newest += 1;
            }
        }
        tx.close_writer();
        newest
    });
    let mut buf = Vec::new();
    let (mut received, mut last) = (0u64, None::<u64>);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !r.ended() {
        assert!(std::time::Instant::now() < deadline, "stress test stuck");
        if !r.pop(&mut buf) {
            std::hint::spin_loop();
            continue;
        }
        let seq = seq_of(&buf);
        assert_eq!(buf, payload(seq, len_of(seq)), "record {seq} torn");
        assert!(last.is_none_or(|l| seq > l), "{seq} after {last:?}");
        last = Some(seq);
        received += 1;
    }
    let newest_dropped = sender.join().unwrap();
    let s = r.stats();
    assert_eq!(s.pushed, N);
    assert_eq!(s.consumed, received);
    assert_eq!(received + s.dropped, N, "received + dropped != sent: {s:?}");
    assert!(received > 0 && s.dropped > 0, "no contention: {s:?}");
    eprintln!(
        "{N} pushed, {received} received, {} dropped ({newest_dropped} of them newest)",
        s.dropped
    );
}

#[test]
fn a_gone_receiver_is_reported_not_waited_for() {
    let r = ring(4096, 2);
    assert_eq!(r.push_t(b"a", false), Pushed::Ok);
    assert_eq!(r.push_t(b"b", false), Pushed::Ok);
    r.close_reader();
    // Full (2 samples) and the receiver is gone: no wait.
    assert_eq!(r.push_t(b"c", false), Pushed::ReceiverGone);
    assert_eq!(r.stats().undeliverable, 1);
}

#[test]
fn end_of_stream_only_once_drained() {
    let r = ring(4096, 16);
    r.push_t(b"last", false);
    r.close_writer();
    assert!(r.writer_closed() && !r.ended());
    let mut buf = Vec::new();
    assert!(r.pop(&mut buf));
    assert!(r.ended());
}
