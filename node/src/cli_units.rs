//! Numbers as `weir`'s tables show them to people: durations and sizes in the largest unit
//! that divides them exactly, limits that are not set as "unlimited", node lists as `1,2,3`.

/// `604800000` as `7d`, `5400000` as `90m`, `1500` as `1500ms`: the largest of d, h, m, s
/// that divides the duration exactly, so that nothing is rounded away.
pub fn duration_ms(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    if ms == 0 {
        return "0ms".to_owned();
    }
    UNITS
        .iter()
        .find(|(unit, _)| ms.is_multiple_of(*unit))
        .map_or_else(|| format!("{ms}ms"), |(unit, name)| format!("{}{name}", ms / unit))
}

/// A size in the largest binary unit that divides it exactly (`1073741824` as `1GiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    if n == 0 {
        return "0B".to_owned();
    }
    UNITS
        .iter()
        .find(|(unit, _)| n.is_multiple_of(*unit))
        .map_or_else(|| format!("{n}B"), |(unit, name)| format!("{}{name}", n / unit))
}

/// A size limit, "unlimited" when there is none.
pub fn bytes_limit(n: Option<u64>) -> String {
    n.map_or_else(|| "unlimited".to_owned(), bytes)
}

/// Node ids as `1,2,3`; `-` for none.
pub fn node_list(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_exact_and_readable() {
        assert_eq!(duration_ms(604_800_000), "7d");
        assert_eq!(duration_ms(5_400_000), "90m");
        assert_eq!(duration_ms(7_200_000), "2h");
        assert_eq!(duration_ms(1500), "1500ms");
        assert_eq!(duration_ms(30_000), "30s");
        assert_eq!(duration_ms(0), "0ms");
        assert_eq!(bytes(1 << 30), "1GiB");
        assert_eq!(bytes(3 << 20), "3MiB");
        assert_eq!(bytes(1000), "1000B");
        assert_eq!(bytes_limit(None), "unlimited");
        assert_eq!(node_list(&[3, 1]), "3,1");
        assert_eq!(node_list(&[]), "-");
    }
}

/// A time as milliseconds since the epoch: either that number, or a UTC date and time as Kafka's
/// tools take it, `YYYY-MM-DDTHH:MM:SS` with optional `.mmm` and `Z`.
pub fn parse_datetime_ms(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{s:?} is neither milliseconds since the epoch nor YYYY-MM-DDTHH:MM:SS[.mmm][Z]");
    let t = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let (time, millis) = match time.split_once('.') {
        Some((hms, ms)) if ms.len() == 3 => (hms, ms.parse::<i64>().map_err(|_| bad())?),
        Some(_) => return Err(bad()),
        None => (time, 0),
    };
    let num = |v: &str| v.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let h: Vec<&str> = time.split(':').collect();
    let (&[y, mo, da], &[hh, mi, ss]) = (&d[..], &h[..]) else { return Err(bad()) };
    let (y, mo, da, hh, mi, ss) = (num(y)?, num(mo)?, num(da)?, num(hh)?, num(mi)?, num(ss)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo)
        || da < 1
        || da > month_days[(mo - 1) as usize]
        || hh > 23
        || mi > 59
        || ss > 59
    {
        return Err(bad());
    }
    Ok(((days_from_civil(y, mo, da) * 24 + hh) * 60 + mi) * 60_000 + ss * 1000 + millis)
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar (Howard
/// Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod datetime_tests {
    use super::parse_datetime_ms;

    #[test]
    fn datetimes_parse_as_utc_milliseconds() {
        assert_eq!(parse_datetime_ms("0"), Ok(0));
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00"), Ok(0));
        assert_eq!(parse_datetime_ms("2026-12-06T04:40:00.123Z"), Ok(1_796_532_000_123));
        assert_eq!(parse_datetime_ms("2000-02-29T12:00:00Z"), Ok(951_825_600_000));
        for bad in [
            "2026-13-01T00:00:00",
            "2026-02-29T00:00:00",
            "2026-04-31T00:00:00",
            "2026-12-06",
            "2026-12-06T04:40",
            "yesterday",
            "2026-12-06T04:40:00.1",
        ] {
            assert!(parse_datetime_ms(bad).is_err(), "{bad}");
        }
    }
}
