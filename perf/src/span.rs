//! A span of time as `weir-perf` takes it on the command line: `8` or `8s` seconds, `500ms`,
//! `250us`, `2m`, fractions allowed (`1.5s`).

use std::time::Duration;

/// A length of time from a flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span(pub Duration);

impl Span {
    pub fn secs(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number.parse().map_err(|_| format!("{s:?} is not a time: give 8s, 500ms, 2m or 8"))?;
        let scale = match unit.trim() {
            "" | "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "m" | "min" => 60.0,
            other => return Err(format!("{s:?}: unit {other:?} is not one of s, ms, us, m")),
        };
        let secs = n * scale;
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("{s:?} is not a time"));
        }
        Ok(Span(Duration::from_secs_f64(secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        let ms = |s: &str| s.parse::<Span>().unwrap().0.as_millis();
        assert_eq!(ms("8"), 8000);
        assert_eq!(ms("8s"), 8000);
        assert_eq!(ms("1.5s"), 1500);
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("2m"), 120_000);
        assert_eq!("250us".parse::<Span>().unwrap().0.as_micros(), 250);
        for bad in ["", "s", "8h", "-1s", "fast"] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?}");
        }
    }
}
