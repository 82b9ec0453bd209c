//! Latency histograms: recording in microseconds, the summary every run reports, the percentile
//! curve that plots draw, and the HdrHistogram percentile-distribution text (`.hgrm`).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// The largest latency recorded: a minute, in microseconds. Longer ones are clamped to it.
pub const LATENCY_US_MAX: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self { hist: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds") }
    }
}

/// Percentiles every report lists.
pub const PERCENTILES: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

/// What a run reports about a latency distribution (microseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
    /// (percentile, value in µs) points from 0 to 100, denser towards the tail: the curve plots
    /// draw.
    pub curve: Vec<(f64, u64)>,
}

impl Latency {
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, LATENCY_US_MAX));
    }

    pub fn record(&mut self, d: std::time::Duration) {
        self.record_us(d.as_micros().min(u128::from(LATENCY_US_MAX)) as u64);
    }

    pub fn merge(&mut self, other: &Latency) {
        self.hist.add(&other.hist).expect("histograms with the same bounds");
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at `percentile` (0..=100), in µs.
    pub fn at(&self, percentile: f64) -> u64 {
        self.hist.value_at_quantile(percentile / 100.0)
    }

    pub fn summary(&self) -> Summary {
        let curve = if self.hist.is_empty() {
            Vec::new()
        } else {
            self.hist
                .iter_quantiles(5)
                .map(|v| (v.quantile_iterated_to() * 100.0, v.value_iterated_to()))
                .collect()
        };
        Summary {
            count: self.hist.len(),
            mean_us: self.hist.mean(),
            p50_us: self.at(50.0),
            p90_us: self.at(90.0),
            p99_us: self.at(99.0),
            p999_us: self.at(99.9),
            p9999_us: self.at(99.99),
            max_us: self.hist.max(),
            curve,
        }
    }

    /// Writes the HdrHistogram percentile distribution (values in milliseconds), the text that
    /// HdrHistogram's plotter and other tools read.
    pub fn write_hgrm(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        )?;
        if !self.hist.is_empty() {
            for v in self.hist.iter_quantiles(5) {
                let q = v.quantile_iterated_to();
                let ms = v.value_iterated_to() as f64 / 1000.0;
                if q < 1.0 {
                    writeln!(
                        out,
                        "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                        ms,
                        q,
                        self.hist.count_between(0, v.value_iterated_to()),
                        1.0 / (1.0 - q)
                    )?;
                } else {
                    writeln!(out, "{:>12.3} {:>14.12} {:>10}", ms, q, self.hist.len())?;
                }
            }
        }
        writeln!(
            out,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
            self.hist.mean() / 1000.0,
            self.hist.stdev() / 1000.0
        )?;
        writeln!(
            out,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            self.hist.max() as f64 / 1000.0,
            self.hist.len()
        )?;
        writeln!(
            out,
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
            self.hist.buckets(),
            self.hist.distinct_values()
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform() -> Latency {
        let mut l = Latency::default();
        for us in 1..=10_000 {
            l.record_us(us);
        }
        l
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let s = uniform().summary();
        assert_eq!(s.count, 10_000);
        // 3 significant digits: each value within 0.1 % of the exact one.
        for (got, exact) in [(s.p50_us, 5000), (s.p90_us, 9000), (s.p99_us, 9900), (s.p999_us, 9990)] {
            assert!(got.abs_diff(exact) <= exact / 1000 + 1, "{got} vs {exact}");
        }
        assert!(s.max_us.abs_diff(10_000) <= 10);
        assert!((s.mean_us - 5000.5).abs() < 10.0);
        // The curve rises with the percentile and ends at the max.
        assert!(s.curve.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(s.curve.last().unwrap(), &(100.0, s.max_us));
    }

    #[test]
    fn merged_histograms_count_both() {
        let mut a = uniform();
        let mut b = Latency::default();
        b.record_us(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 10_001);
        assert!(a.summary().max_us >= 999_000);
        // Out-of-range values are clamped, not dropped.
        b.record_us(u64::MAX);
        b.record_us(0);
        assert_eq!(b.count(), 3);
    }

    #[test]
    fn hgrm_lists_rising_percentiles_and_the_totals() {
        let mut out = Vec::new();
        uniform().write_hgrm(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<(f64, f64)> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols[0].parse().unwrap(), cols[1].parse().unwrap())
            })
            .collect();
        assert!(rows.len() > 20);
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(rows.last().unwrap().1, 1.0);
        assert!(text.contains("Total count    =        10000"));
    }
}
