//! The frame guard against real requests from kafka-protocol's encoder, and against hostile
//! frames derived from them: the guard refuses a frame, or the decoder then runs on it without
//! panicking and without asking for an allocation out of proportion to the frame.

mod alloc;
mod decode;
mod refusals;
mod requests;

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use weir_kafka::error::GuardError;
use weir_kafka::guard::check_request;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

/// The largest single allocation the decoder may request for a frame the guard passed: a
/// multiple of the frame, plus a floor for fixed-size allocations (a `BTreeMap` node for
/// unknown tagged fields, an error message) that do not grow with it.
fn allocation_bound_bytes(frame_len: usize) -> usize {
    64 * frame_len + 4096
}

/// Every (API key, version, frame) the tests start from: each version of each API, once with
/// nullable fields filled and once with them null.
fn valid_frames() -> Vec<(i16, i16, Bytes)> {
    let mut frames = Vec::new();
    for &(api_key, lo, hi, build) in requests::APIS {
        for version in lo..=hi {
            for nulls in [false, true] {
                frames.push((api_key, version, build(version, nulls)));
            }
        }
    }
    frames
}

/// The rule for a hostile frame: refused, or decoded without a panic or an outsized allocation.
fn check_hostile(api_key: i16, version: i16, frame: &[u8]) -> Result<bool, String> {
    if check_request(api_key, version, frame).is_err() {
        return Ok(false);
    }
    let body = Bytes::copy_from_slice(frame);
    let (outcome, largest) =
        alloc::largest_during(|| catch_unwind(AssertUnwindSafe(|| decode::decode(api_key, version, body))));
    let context = || format!("API {api_key} v{version}, frame {frame:02x?}");
    if outcome.is_err() {
        return Err(format!("decoder panicked on a frame the guard passed: {}", context()));
    }
    if largest > allocation_bound_bytes(frame.len()) {
        return Err(format!("decoder allocated {largest} bytes at once: {}", context()));
    }
    Ok(true)
}

#[test]
fn every_version_of_every_api_is_accepted_and_decodes() {
    let frames = valid_frames();
    assert!(frames.len() > 200, "{} frames", frames.len());
    for (api_key, version, frame) in frames {
        let verdict = check_request(api_key, version, &frame);
        assert_eq!(verdict, Ok(()), "API {api_key} v{version}, frame {frame:02x?}");
        // kafka-protocol 0.18 no longer decodes Produce v0-2; the others must round-trip.
        if api_key != 0 || version >= 3 {
            let decoded = decode::decode(api_key, version, frame.clone());
            assert_eq!(decoded, Ok(()), "API {api_key} v{version}");
        }
    }
}

#[test]
fn versions_outside_the_schemas_are_unsupported_without_walking() {
    for &(api_key, lo, hi, _) in requests::APIS {
        for api_version in [lo - 1, hi + 1] {
            let verdict = check_request(api_key, api_version, &[]);
            assert_eq!(verdict, Err(GuardError::UnsupportedVersion { api_key, api_version }));
        }
        assert_eq!(weir_kafka::guard::versions(api_key), Some((lo, hi)));
    }
    let verdict = check_request(1000, 0, &[0; 8]);
    assert_eq!(verdict, Err(GuardError::UnsupportedVersion { api_key: 1000, api_version: 0 }));
}

/// What became of a set of hostile frames.
#[derive(Default)]
struct Tally {
    refused: usize,
    decoded: usize,
    failures: Vec<String>,
}

impl Tally {
    fn judge(&mut self, api_key: i16, version: i16, frame: &[u8]) {
        match check_hostile(api_key, version, frame) {
            Ok(false) => self.refused += 1,
            Ok(true) => self.decoded += 1,
            Err(failure) => self.failures.push(failure),
        }
    }

    fn assert_no_failures(&self) {
        let failures = &self.failures;
        assert!(failures.is_empty(), "{} failures, first: {}", failures.len(), failures[0]);
    }
}

#[test]
fn truncated_frames_are_refused_or_decode_safely() {
    let mut tally = Tally::default();
    for (api_key, version, frame) in valid_frames() {
        for len in 0..frame.len() {
            tally.judge(api_key, version, &frame[..len]);
        }
    }
    tally.assert_no_failures();
    // The walk must end exactly at the end of the body, so no strict prefix of these requests
    // passes as a whole one.
    assert_eq!(tally.decoded, 0, "{} truncations passed the guard", tally.decoded);
    assert!(tally.refused > 10_000, "{} truncations", tally.refused);
}

#[test]
fn huge_counts_and_lengths_are_refused_or_decode_safely() {
    // Counts and lengths near i32::MAX and u32::MAX, a varint that claims ~2^28, then single
    // bytes that make a varint continue, end high, or turn a length negative.
    let words = [0x7fff_ffff_u32.to_be_bytes(), 0xffff_fffe_u32.to_be_bytes(), [0xff, 0xff, 0xff, 0x0f]];
    let mut tally = Tally::default();
    for (api_key, version, frame) in valid_frames() {
        let mut hostile = frame.to_vec();
        for start in 0..frame.len().saturating_sub(3) {
            for word in &words {
                hostile[start..start + 4].copy_from_slice(word);
                tally.judge(api_key, version, &hostile);
                hostile[start..start + 4].copy_from_slice(&frame[start..start + 4]);
            }
        }
        for at in 0..frame.len() {
            for byte in [0xff, 0x80, 0x7f] {
                hostile[at] = byte;
                tally.judge(api_key, version, &hostile);
                hostile[at] = frame[at];
            }
        }
    }
    tally.assert_no_failures();
    // Both outcomes must be common, so the test exercises the decoder behind the guard as well
    // as the guard's refusals.
    let Tally { refused, decoded, .. } = tally;
    assert!(refused > 10_000 && decoded > 1_000, "{refused} refused, {decoded} decoded");
}
