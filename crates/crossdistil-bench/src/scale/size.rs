//! Row counts on the command line: `1000000`, `1_000_000`, `1e6` or `2.5e6`.

/// Parses one row count: digits (underscores allowed as separators) or a decimal in
/// scientific notation (`1e6`, `2.5e7`) whose value is a whole number. Zero is refused.
///
/// ```
/// use crossdistil_bench::parse_size;
/// assert_eq!(parse_size("1e6"), Ok(1_000_000));
/// assert_eq!(parse_size("2.5e3"), Ok(2_500));
/// assert_eq!(parse_size("20_000"), Ok(20_000));
/// assert!(parse_size("1.5").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim().replace('_', "");
    let bad = || format!("`{text}` is not a row count (write 1000000 or 1e6)");
    let n = if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
        t.parse::<usize>().map_err(|_| bad())?
    } else if t.contains(['e', 'E']) {
        let v: f64 = t.parse().map_err(|_| bad())?;
        if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v > usize::MAX as f64 / 2.0 {
            return Err(bad());
        }
        v as usize
    } else {
        return Err(bad());
    };
    if n == 0 {
        return Err(format!("`{text}`: a size needs at least one row"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_spelling() {
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("1e6"), Ok(1_000_000));
        assert_eq!(parse_size("1E8"), Ok(100_000_000));
        assert_eq!(parse_size(" 2.5e6 "), Ok(2_500_000));
        assert_eq!(parse_size("10_000_000"), Ok(10_000_000));
        for bad in ["", "abc", "1.5", "1e-3", "-5", "0", "0e3", "1e400", "1,000"] {
            assert!(parse_size(bad).is_err(), "`{bad}` was accepted");
        }
    }
}
