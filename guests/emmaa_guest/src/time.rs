//! The invocation time as Batch job names carry it: `YYYYMMDD_HHMMSS`, UTC.

/// Formats seconds since the Unix epoch as `YYYYMMDD_HHMMSS` (UTC).
pub fn job_timestamp(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}_{:02}{:02}{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_epoch() {
        assert_eq!(job_timestamp(0), "19700101_000000");
    }

    #[test]
    fn formats_emmaa_dates() {
        assert_eq!(job_timestamp(1_580_817_600), "20200204_120000");
        assert_eq!(job_timestamp(1_582_934_399), "20200228_235959");
        assert_eq!(job_timestamp(1_582_934_400), "20200229_000000");
        assert_eq!(job_timestamp(1_795_000_000), "20261118_110640");
    }
}
