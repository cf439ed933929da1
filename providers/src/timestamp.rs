//! RFC 3339 timestamps read and written without chrono's general machinery.
//!
//! Every conversation of a page has one or two timestamps to read and to write,
//! and chrono's general parser and formatter (format items, a `String` per
//! timestamp) cost more than the rest of a conversation's fields together. The
//! vendors send one shape, `2024-11-15T22:06:37Z` with or without a fraction,
//! and the answer writes one shape back, so both directions handle that shape
//! by hand and leave everything else to chrono:
//! - [`parse_utc`] reads `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` and returns `None` for
//!   anything else (another offset, a leap second, a lowercase `t`), so the
//!   caller asks chrono, which says what it always said;
//! - [`with_rfc3339`] writes a timestamp of the years 0000–9999 as chrono's
//!   `to_rfc3339_opts(SecondsFormat::AutoSi, true)` does, on the stack, and
//!   asks chrono for the others.
//!
//! The tests compare both with chrono on every field edge and on generated
//! timestamps.

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Timelike, Utc,
};

/// Reads `text` when it is exactly `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` and names
/// a real date and time (seconds 00–59): the value chrono's RFC 3339 parser
/// gives for it. `None` for any other text, valid or not.
pub(crate) fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punctuation.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let nano = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    // Leap seconds (60) are chrono's to read.
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// The value of 1 to 9 ASCII digits; `None` when a byte is not one.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// Hands `write` the text of `t` as RFC 3339 UTC with `Z`, fractional seconds
/// only when there are some (3, 6 or 9 digits, the fewest that hold them): the
/// text chrono's `to_rfc3339_opts(SecondsFormat::AutoSi, true)` gives. Written
/// on the stack ([`Rfc3339`]) for the years 0000–9999, by chrono for the others.
pub(crate) fn with_rfc3339<R>(t: &DateTime<Utc>, write: impl FnOnce(&str) -> R) -> R {
    match Rfc3339::new(t) {
        Some(text) => write(text.as_str()),
        None => write(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// A timestamp of the years 0000–9999 written as [`with_rfc3339`] writes it,
/// on the stack.
struct Rfc3339 {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

impl Rfc3339 {
    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    const CAPACITY: usize = 30;

    /// Writes `t`, or `None` when its year is outside 0000–9999 (chrono writes
    /// those with a sign and more digits).
    fn new(t: &DateTime<Utc>) -> Option<Self> {
        // `DateTime`'s own accessors each convert to local time first.
        let naive = t.naive_utc();
        let (date, time) = (naive.date(), naive.time());
        let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
        };
        out.two(year / 100);
        out.two(year % 100);
        out.push(b'-');
        out.two(date.month());
        out.push(b'-');
        out.two(date.day());
        out.push(b'T');
        // A leap second is kept as nanoseconds past 10^9; chrono writes it as
        // second 60 with the rest as the fraction.
        let (hour, minute, mut second) = (time.hour(), time.minute(), time.second());
        let mut nano = time.nanosecond();
        if nano >= 1_000_000_000 {
            second += 1;
            nano -= 1_000_000_000;
        }
        out.two(hour);
        out.push(b':');
        out.two(minute);
        out.push(b':');
        out.two(second);
        if nano != 0 {
            let (value, width) = if nano % 1_000_000 == 0 {
                (nano / 1_000_000, 3)
            } else if nano % 1_000 == 0 {
                (nano / 1_000, 6)
            } else {
                (nano, 9)
            };
            out.push(b'.');
            out.fixed(value, width);
        }
        out.push(b'Z');
        Some(out)
    }

    /// The text (ASCII).
    fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever pushed.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    /// `n` (below 100) as two digits.
    fn two(&mut self, n: u32) {
        self.fixed(n, 2);
    }

    /// `n` as exactly `width` digits, zeros first.
    fn fixed(&mut self, mut n: u32, width: usize) {
        for i in (0..width).rev() {
            self.bytes[self.len + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len += width;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn chrono_parse(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    fn chrono_write(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    #[test]
    fn the_vendors_shapes_read_as_chrono_reads_them() {
        for text in [
            "2024-11-15T22:06:37Z",
            "2024-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2024-06-01T12:00:00.5Z",
            "2024-06-01T12:00:00.123Z",
            "2024-06-01T12:00:00.000123Z",
            "2024-06-01T12:00:00.000000001Z",
            "2024-06-01T12:00:00.0Z",
        ] {
            assert_eq!(parse_utc(text), chrono_parse(text), "{text}");
            assert!(parse_utc(text).is_some(), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_chrono() {
        for text in [
            "",
            "2024-11-15T22:06:37",
            "2024-11-15t22:06:37Z",
            "2024-11-15 22:06:37Z",
            "2024-11-15T22:06:37z",
            "2024-11-15T22:06:37+00:00",
            "2024-11-15T22:06:37.Z",
            "2024-11-15T22:06:37.1234567891Z",
            "2024-11-15T22:06:60Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "+2024-01-01T00:00:00Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:0aZ",
            "2024-01-01T00:00:00.1a2Z",
            "2024-01-01T00:00:00 Z",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_utc(text), None, "{text}");
        }
    }

    #[test]
    fn written_as_chrono_writes_at_every_edge() {
        let at = |y, mo, d, h, mi, s, n| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
                + chrono::Duration::nanoseconds(i64::from(n))
        };
        for t in [
            at(2024, 11, 15, 22, 6, 37, 0),
            at(0, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(2024, 6, 1, 12, 0, 0, 5_000_000),
            at(2024, 6, 1, 12, 0, 0, 123_000),
            at(2024, 6, 1, 12, 0, 0, 1),
            at(2024, 6, 1, 12, 0, 0, 100_000_000),
        ] {
            assert_eq!(
                Rfc3339::new(&t).map(|w| w.as_str().to_owned()),
                Some(chrono_write(&t))
            );
        }
        // A leap second: nanoseconds past 10^9, written as second 60.
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        assert_eq!(chrono_write(&leap), "2016-12-31T23:59:60.500Z");
        assert_eq!(Rfc3339::new(&leap).unwrap().as_str(), chrono_write(&leap));
        // Years chrono writes with a sign are left to chrono.
        for year in [-1, 10_000] {
            let t = at(year, 1, 1, 0, 0, 0, 0);
            assert!(Rfc3339::new(&t).is_none());
            assert_eq!(with_rfc3339(&t, str::to_owned), chrono_write(&t));
        }
    }

    proptest! {
        #[test]
        fn generated_timestamps_round_trip_as_chrono_does(
            secs in 0i64..253_402_300_800,
            nano in prop_oneof![
                Just(0u32),
                0u32..1000,
                (0u32..1000).prop_map(|n| n * 1000),
                (0u32..1000).prop_map(|n| n * 1_000_000),
                0u32..1_000_000_000,
            ],
        ) {
            let t = Utc.timestamp_opt(secs, nano).unwrap();
            let written = Rfc3339::new(&t).unwrap();
            prop_assert_eq!(written.as_str(), chrono_write(&t));
            prop_assert_eq!(parse_utc(written.as_str()), Some(t));
        }

        #[test]
        fn what_is_read_is_what_chrono_reads(
            date in (0u32..10_000, 0u32..14, 0u32..33),
            time in (0u32..26, 0u32..62, 0u32..62),
            fraction in "(\\.[0-9]{0,11})?",
            end in prop_oneof![Just("Z"), Just("z"), Just("+00:00"), Just("")],
        ) {
            let text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{end}",
                date.0, date.1, date.2, time.0, time.1, time.2
            );
            let shape = end == "Z" && time.2 < 60 && (fraction.is_empty() || (2..=10).contains(&fraction.len()));
            match parse_utc(&text) {
                Some(t) => prop_assert_eq!(Some(t), chrono_parse(&text)),
                // Only what is not the one shape, or no date, is left to chrono.
                None => prop_assert!(!shape || chrono_parse(&text).is_none(), "{}", text),
            }
        }
    }
}
