//! Damaged frames thrown at a real 2-shard node's Kafka listener, each on a fresh connection:
//! every truncation of valid frames, counts and lengths set to 0x7fffffff, length prefixes
//! that lie, and seeded random byte flips. The node must answer or close each connection
//! within [`READ_TIMEOUT`] (unless the request, as damaged, itself asks to wait longer), and
//! afterwards still serve, alive.

use super::common::kafka::KafkaNode;
use super::requests as req;
use super::wire::{READ_TIMEOUT, Read1, Wire, batch, decode, frame, read_frame, values};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use std::io::Write;
use std::net::{Shutdown, TcpStream};

/// The correlation id of the ApiVersions request sent behind a damaged frame.
const FOLLOW_ID: i32 = 0x0F01_10F0;
/// How many frames get random flips.
const FLIPS: usize = 5000;

/// A valid frame to damage, and which of its bytes say how long the node may wait (left
/// intact by flips, so that a flip does not make a legitimate wait of many seconds).
struct Seed {
    what: String,
    frame: Vec<u8>,
    protected: Vec<bool>,
    flexible: bool,
}

fn seed(key: ApiKey, v: i16, body: RequestKind, alt: Option<RequestKind>) -> Seed {
    let frame = frame(key, v, 1, &body);
    let protected = match alt {
        Some(alt) => frame.iter().zip(super::wire::frame(key, v, 1, &alt)).map(|(a, b)| *a != b).collect(),
        None => vec![false; frame.len()],
    };
    let flexible = key.request_header_version(v) >= 2;
    Seed { what: format!("{key:?} v{v}"), frame, protected, flexible }
}

fn seeds() -> Vec<Seed> {
    let records = || batch(&["fuzzed one".into(), "fuzzed two".into()]);
    let long = 0x7f7f_7f7f;
    let mut out = Vec::new();
    for v in [12, 1] {
        out.push(seed(ApiKey::Metadata, v, req::metadata(v, &["fz"], true), None));
    }
    for v in [9, 3] {
        out.push(seed(ApiKey::Produce, v, req::produce(-1, "fz", 0, records()), None));
    }
    for v in [12, 4] {
        let alt = req::fetch(v, "fz", 0, 0, long);
        out.push(seed(ApiKey::Fetch, v, req::fetch(v, "fz", 0, 0, 100), Some(alt)));
    }
    for v in [9, 5] {
        let alt = req::join(v, "fzg", "", long);
        out.push(seed(ApiKey::JoinGroup, v, req::join(v, "fzg", "", 300), Some(alt)));
    }
    for v in [8, 2] {
        out.push(seed(ApiKey::OffsetCommit, v, req::commit(v, "fzc", -1, "", "fz", 1), None));
    }
    for v in [7, 2] {
        let alt = req::create_topics("fz-created", long, false);
        out.push(seed(ApiKey::CreateTopics, v, req::create_topics("fz-created", 2, false), Some(alt)));
    }
    out
}

/// How one throw ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Answered,
    Closed,
}

/// Sends `bytes` on a fresh connection, then an ApiVersions request (`follow`) or the end of
/// the stream, and reads until the ApiVersions answer or the close.
fn throw(addr: &str, what: &str, bytes: &[u8], follow: bool) -> End {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    // The node may close as soon as it has read enough to refuse: writes may then fail.
    let _ = s.write_all(bytes);
    if follow {
        let _ = s.write_all(&frame(ApiKey::ApiVersions, 0, FOLLOW_ID, &req::api_versions(0)));
    } else {
        let _ = s.shutdown(Shutdown::Write);
    }
    loop {
        match read_frame(&mut s) {
            Read1::Frame(b) if b[..4] == FOLLOW_ID.to_be_bytes() => return End::Answered,
            Read1::Frame(b) => check_answer(what, &bytes[4..], b),
            Read1::Closed => return End::Closed,
            Read1::TimedOut if may_wait(&bytes[4..]) => return End::Answered,
            Read1::TimedOut => {
                panic!("{what}: neither answered nor closed in {READ_TIMEOUT:?}: {bytes:02x?}")
            }
        }
    }
}

/// An answer to a damaged request is one to the request as the node read it: its correlation
/// id, and a response that decodes in its version (v0 for an ApiVersions version not served).
fn check_answer(what: &str, sent: &[u8], answer: Vec<u8>) {
    let key = ApiKey::try_from(i16::from_be_bytes([sent[0], sent[1]])).expect("answered a known api");
    let mut version = i16::from_be_bytes([sent[2], sent[3]]);
    if key == ApiKey::ApiVersions && !weir_kafka::versions::is_served(key as i16, version) {
        version = 0;
    }
    let (id, _) = decode(key, version, answer);
    assert_eq!(id.to_be_bytes(), sent[4..8], "{what}: correlation id");
}

/// Whether the request in `body` (after its length prefix) asks the node to wait longer than
/// [`READ_TIMEOUT`]: a fetch's long poll or a join's rebalance, which a flip may lengthen.
fn may_wait(body: &[u8]) -> bool {
    if body.len() < 4 {
        return false;
    }
    let Ok(key) = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])) else { return false };
    let version = i16::from_be_bytes([body[2], body[3]]);
    let mut buf = Bytes::copy_from_slice(body);
    if RequestHeader::decode(&mut buf, key.request_header_version(version)).is_err() {
        return false;
    }
    let long = READ_TIMEOUT.as_millis() as i32 - 1000;
    match RequestKind::decode(key, &mut buf, version) {
        Ok(RequestKind::Fetch(f)) => f.max_wait_ms > long,
        Ok(RequestKind::JoinGroup(j)) => j.rebalance_timeout_ms.max(j.session_timeout_ms) > long,
        _ => false,
    }
}

/// `body` behind a length prefix that tells the truth.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Every truncation of the seed's body, each with a correct length prefix.
fn truncations(addr: &str, seed: &Seed) -> usize {
    let body = &seed.frame[4..];
    for len in 0..body.len() {
        throw(addr, &format!("{} cut to {len}", seed.what), &framed(&body[..len]), true);
    }
    body.len()
}

/// Every count the frame could hold set to 0x7fffffff: each 4-byte window of a fixed-width
/// frame, each byte of a flexible one replaced by the varint of 0x7fffffff + 1.
fn huge_counts(addr: &str, seed: &Seed) -> usize {
    let body = &seed.frame[4..];
    let guarded = &seed.protected[4..];
    let mut thrown = 0;
    for at in 4..body.len() {
        let mut b = body.to_vec();
        if seed.flexible {
            if guarded[at] {
                continue;
            }
            b.splice(at..=at, [0xff, 0xff, 0xff, 0xff, 0x07]);
        } else {
            if at + 4 > b.len() || guarded[at..at + 4].iter().any(|g| *g) {
                continue;
            }
            b[at..at + 4].copy_from_slice(&0x7fff_ffff_i32.to_be_bytes());
        }
        throw(addr, &format!("{} count at {at}", seed.what), &framed(&b), true);
        thrown += 1;
    }
    thrown
}

/// Length prefixes that lie: negative, too small, too large, and one byte off either way.
fn lying_lengths(addr: &str, seed: &Seed) -> usize {
    let body = &seed.frame[4..];
    let n = body.len() as i32;
    let lies = [i32::MIN, -1, 0, 3, 7, n - 1, n + 1, n + 1000, 200 << 20, i32::MAX];
    for lie in lies {
        let mut f = lie.to_be_bytes().to_vec();
        f.extend_from_slice(body);
        throw(addr, &format!("{} with length {lie}", seed.what), &f, false);
    }
    lies.len()
}

/// A tiny xorshift, seeded, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// [`FLIPS`] frames with one to three bytes (after the length prefix) flipped.
fn flips(addr: &str, seeds: &[Seed]) -> (usize, usize) {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut answered = 0;
    for i in 0..FLIPS {
        let seed = &seeds[i % seeds.len()];
        let mut f = seed.frame.clone();
        let mut done = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let at = 4 + rng.below(f.len() - 4);
            if !seed.protected[at] {
                f[at] ^= 1 + rng.below(255) as u8;
                done.push(at);
            }
        }
        if throw(addr, &format!("{} flipped at {done:?} (case {i})", seed.what), &f, true) == End::Answered {
            answered += 1;
        }
    }
    (answered, FLIPS - answered)
}

/// The node still serves: Metadata answers, and a produce reads back.
fn still_serves(node: &mut KafkaNode) {
    assert!(node.node.child.try_wait().unwrap().is_none(), "the node died");
    let mut w = Wire::connect(&node.bootstrap);
    let r = kind!(w.call(ApiKey::Metadata, 12, req::metadata(12, &["fz"], false)), Metadata);
    assert_eq!(r.topics[0].error_code, 0);
    let vals = vec!["after the barrage".to_owned()];
    let r = kind!(w.call(ApiKey::Produce, 9, req::produce(-1, "fz", 0, batch(&vals))), Produce);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, "fz", 0, p.base_offset, 0)), Fetch);
    let got = values(r.responses[0].partitions[0].records.clone());
    assert_eq!(got.first(), Some(&(p.base_offset, vals[0].clone())));
}

pub fn barrage() {
    let mut node = KafkaNode::start(2, &[("WEIR_FSYNC", "false")]);
    node.create_topic("fz", 1, &[]);
    node.create_topic("fz-created", 2, &[]);
    let addr = node.bootstrap.clone();
    let seeds = seeds();
    // Each seed, intact, is answered: the damage below is what the node refuses.
    for s in &seeds {
        assert_eq!(throw(&addr, &s.what, &s.frame, true), End::Answered, "{}", s.what);
    }
    let mut thrown = 0;
    for s in &seeds {
        thrown += truncations(&addr, s) + huge_counts(&addr, s) + lying_lengths(&addr, s);
    }
    eprintln!("{thrown} truncated, oversized-count and lying-length frames");
    still_serves(&mut node);
    let (answered, closed) = flips(&addr, &seeds);
    eprintln!("{FLIPS} flipped frames: {answered} answered, {closed} refused");
    // Both outcomes happen: a flip in a value is answered, one in the structure refused.
    assert!(answered > FLIPS / 10 && closed > FLIPS / 10, "{answered} answered, {closed} closed");
    still_serves(&mut node);
}
