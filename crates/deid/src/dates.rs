//! Shifting DA and DT values by whole days.

use chrono::{Days, NaiveDate};

fn shift_date(yyyymmdd: &str, days_earlier: u64) -> Option<String> {
    let d = NaiveDate::parse_from_str(yyyymmdd, "%Y%m%d").ok()?;
    Some(
        d.checked_sub_days(Days::new(days_earlier))?
            .format("%Y%m%d")
            .to_string(),
    )
}

/// A DA value `days_earlier`; `None` if it is not a full date.
pub(crate) fn shift_da(value: &str, days_earlier: u64) -> Option<String> {
    let v = value.trim();
    (v.len() == 8)
        .then(|| shift_date(v, days_earlier))
        .flatten()
}

/// A DT value `days_earlier`, its time and offset unchanged; `None` if it
/// does not start with a full date.
pub(crate) fn shift_dt(value: &str, days_earlier: u64) -> Option<String> {
    let v = value.trim();
    let date = v.get(..8)?;
    Some(format!("{}{}", shift_date(date, days_earlier)?, &v[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_across_months_and_leap_years() {
        assert_eq!(shift_da("20240301", 1).as_deref(), Some("20240229"));
        assert_eq!(shift_da("20230301", 1).as_deref(), Some("20230228"));
        assert_eq!(shift_da("20240101 ", 366).as_deref(), Some("20221231"));
        assert_eq!(
            shift_dt("20240301101500.123+0100", 1).as_deref(),
            Some("20240229101500.123+0100")
        );
        assert_eq!(shift_dt("20240301", 31).as_deref(), Some("20240130"));
    }

    #[test]
    fn partial_or_malformed_values_are_not_shifted() {
        assert_eq!(shift_da("2024", 1), None);
        assert_eq!(shift_da("20241301", 1), None);
        assert_eq!(shift_da("2024-03-01", 1), None);
        assert_eq!(shift_dt("2024", 1), None);
    }
}
