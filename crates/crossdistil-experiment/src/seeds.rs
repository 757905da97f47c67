//! The seeds of an experiment, as a user writes them: `5` (seeds 1 to 5), `101-110` (a range,
//! both ends included) or `1,3,7` (a list, whose items may be ranges).

use crate::error::{ExperimentError, Result};

/// The most seeds one experiment takes: a typo such as `1-100000000` is refused, not queued.
pub const MAX_SEEDS: usize = 10_000;

/// Parses a seed specification: `N` is seeds `1..=N`; `A-B` is `A..=B`; items separated by
/// commas are concatenated (`1-3,10` is 1, 2, 3, 10). Seeds must be distinct, and there must be
/// at least one.
///
/// ```
/// use crossdistil_experiment::parse_seeds;
/// assert_eq!(parse_seeds("3").unwrap(), [1, 2, 3]);
/// assert_eq!(parse_seeds("101-103").unwrap(), [101, 102, 103]);
/// assert_eq!(parse_seeds("7,1-2").unwrap(), [7, 1, 2]);
/// assert!(parse_seeds("0").is_err());
/// ```
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let bad = |why: String| ExperimentError::Invalid(format!("--seeds {spec:?}: {why}"));
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| bad(format!("`{}` is not a whole number", s.trim())))
    };
    let items: Vec<&str> = spec.split(',').collect();
    let mut seeds = Vec::new();
    for item in &items {
        let range = match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b {
                    return Err(bad(format!("the range {a}-{b} is empty")));
                }
                a..=b
            }
            // A lone count: seeds 1..=N, as the option always meant.
            None if items.len() == 1 => {
                let n = number(item)?;
                if n == 0 {
                    return Err(bad("at least one seed is needed".into()));
                }
                1..=n
            }
            None => {
                let s = number(item)?;
                s..=s
            }
        };
        if range.end() - range.start() >= MAX_SEEDS as u64 {
            return Err(bad(format!("more than {MAX_SEEDS} seeds")));
        }
        seeds.extend(range);
        if seeds.len() > MAX_SEEDS {
            return Err(bad(format!("more than {MAX_SEEDS} seeds")));
        }
    }
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("seed {} is given twice", w[0])));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ranges_and_lists() {
        assert_eq!(parse_seeds("1").unwrap(), [1]);
        assert_eq!(parse_seeds("10").unwrap(), (1..=10).collect::<Vec<_>>());
        assert_eq!(parse_seeds("101-105").unwrap(), [101, 102, 103, 104, 105]);
        assert_eq!(parse_seeds("5,1").unwrap(), [5, 1]);
        assert_eq!(parse_seeds(" 3 , 8-9 ").unwrap(), [3, 8, 9]);
        assert_eq!(parse_seeds("0-1").unwrap(), [0, 1]);
    }

    #[test]
    fn refuses_what_is_not_a_set_of_seeds() {
        for (spec, says) in [
            ("0", "at least one seed"),
            ("", "not a whole number"),
            ("x", "`x` is not a whole number"),
            ("5-3", "the range 5-3 is empty"),
            ("1,1", "seed 1 is given twice"),
            ("1-3,2", "seed 2 is given twice"),
            ("1-100000", "more than 10000 seeds"),
            ("-3", "not a whole number"),
        ] {
            let e = parse_seeds(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec:?}: {e}");
            assert!(e.contains("--seeds"), "{spec:?}: {e}");
        }
    }
}
