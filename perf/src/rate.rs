//! Open-loop pacing: a rate in records or bytes per second, and the schedule of intended send
//! times it gives. Latency is measured from the intended time, not the actual send, so a node
//! that stalls the client is charged for every record that should have gone out meanwhile
//! (no coordinated omission).

use std::time::{Duration, Instant};

/// How fast an open-loop run sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    RecordsPerSec(f64),
    BytesPerSec(f64),
}

impl Rate {
    /// Records per second for records of `record_bytes`.
    pub fn records_per_sec(self, record_bytes: usize) -> f64 {
        match self {
            Rate::RecordsPerSec(r) => r,
            Rate::BytesPerSec(b) => b / record_bytes.max(1) as f64,
        }
    }

    /// This rate split evenly over `n` senders.
    pub fn split(self, n: usize) -> Rate {
        let n = n.max(1) as f64;
        match self {
            Rate::RecordsPerSec(r) => Rate::RecordsPerSec(r / n),
            Rate::BytesPerSec(b) => Rate::BytesPerSec(b / n),
        }
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `50000` or `50k` records per second; `100MB`, `100MiB`, `1GB`, `512KiB`, `2000B` bytes per
    /// second.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("rate {s:?}: expected a number and a unit"))?;
        let rate = match unit {
            "" => Rate::RecordsPerSec(n),
            "k" | "K" => Rate::RecordsPerSec(n * 1e3),
            "M" => Rate::RecordsPerSec(n * 1e6),
            "B" => Rate::BytesPerSec(n),
            "KB" | "kB" => Rate::BytesPerSec(n * 1e3),
            "MB" => Rate::BytesPerSec(n * 1e6),
            "GB" => Rate::BytesPerSec(n * 1e9),
            "KiB" => Rate::BytesPerSec(n * 1024.0),
            "MiB" => Rate::BytesPerSec(n * 1024.0 * 1024.0),
            "GiB" => Rate::BytesPerSec(n * 1024.0 * 1024.0 * 1024.0),
            _ => {
                return Err(format!(
                    "rate {s:?}: unknown unit {unit:?} (k, M, B, KB, MB, GB, KiB, MiB, GiB)"
                ));
            }
        };
        match rate {
            Rate::RecordsPerSec(r) | Rate::BytesPerSec(r) if r > 0.0 && r.is_finite() => Ok(rate),
            _ => Err(format!("rate {s:?} must be positive")),
        }
    }
}

/// Intended send times: the `n`th record is due at `start + n / rate`. Computed from `n`, not
/// accumulated, so rounding never drifts.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    nanos_per_record: f64,
}

impl Schedule {
    pub fn new(start: Instant, records_per_sec: f64) -> Self {
        assert!(records_per_sec > 0.0, "a schedule needs a positive rate");
        Self { start, nanos_per_record: 1e9 / records_per_sec }
    }

    /// When record `n` (from 0) is due.
    pub fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_nanos((n as f64 * self.nanos_per_record) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!("50000".parse::<Rate>(), Ok(Rate::RecordsPerSec(50_000.0)));
        assert_eq!("2.5k".parse::<Rate>(), Ok(Rate::RecordsPerSec(2500.0)));
        assert_eq!("100MB".parse::<Rate>(), Ok(Rate::BytesPerSec(100e6)));
        assert_eq!("1MiB".parse::<Rate>(), Ok(Rate::BytesPerSec(1048576.0)));
        assert!("fast".parse::<Rate>().is_err());
        assert!("10 parsecs".parse::<Rate>().is_err());
        assert!("0".parse::<Rate>().is_err());
        assert_eq!(Rate::BytesPerSec(100e6).records_per_sec(1000), 100_000.0);
        assert_eq!(Rate::RecordsPerSec(900.0).split(3), Rate::RecordsPerSec(300.0));
    }

    #[test]
    fn the_schedule_spaces_sends_evenly_without_drift() {
        let start = Instant::now();
        let s = Schedule::new(start, 3.0);
        // A third of a second each: rounding each step would drift, computing from n does not.
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(3_000_000) - start, Duration::from_secs(1_000_000));
        let gap = s.due(2) - s.due(1);
        assert!(gap.as_nanos().abs_diff(333_333_333) <= 1);
        assert!((0..1000).all(|n| s.due(n) < s.due(n + 1)));
    }
}
