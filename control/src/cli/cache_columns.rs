//! How `usage` and `logs` show the response cache and compression.

/// `hits/lookups (rate%)`, or `-` when the cache took no part.
pub(crate) fn hit_rate(hits: u64, lookups: u64) -> String {
    if lookups == 0 {
        return "-".into();
    }
    format!("{hits}/{lookups} ({:.0}%)", hits as f64 * 100.0 / lookups as f64)
}

/// `plain:sent` as `N.Nx`, or `-` when nothing was compressed.
pub(crate) fn ratio(plain: u64, sent: u64) -> String {
    if plain == 0 || sent == 0 {
        return "-".into();
    }
    format!("{:.1}x", plain as f64 / sent as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_read_well() {
        assert_eq!(super::hit_rate(1, 4), "1/4 (25%)");
        assert_eq!(super::hit_rate(0, 0), "-");
        assert_eq!(super::ratio(1000, 250), "4.0x");
        assert_eq!(super::ratio(0, 0), "-");
    }
}
