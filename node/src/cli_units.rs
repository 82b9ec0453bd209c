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
