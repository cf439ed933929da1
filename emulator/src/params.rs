//! Strict parsing of the vendors' request parameters, shared by every vendor module.
//!
//! The emulator is deliberately as strict as the vendors' documentation, so a gateway bug
//! (an unpadded date, `size=0`) shows up as the vendor's 400/422 in tests instead of
//! being silently tolerated.

use chrono::NaiveDate;

/// Decoded query pairs in arrival order (duplicates kept; [`first`] takes the first).
pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    // Decoding form pairs into strings cannot fail; an empty list is the safe fallback.
    actix_web::web::Query::<Vec<(String, String)>>::from_query(raw)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

/// The first value given for `name`, if any.
pub(crate) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A date in the documented `YYYY-MM-DD` form only: zero-padded, nothing around it, and
/// a real calendar day (`2023-7-10`, `2023-02-30`, `2023-07-10T00:00` are rejected).
pub(crate) fn strict_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// A plain decimal integer ≥ 1 (no sign, no spaces, no fraction); `None` otherwise,
/// including values too large for `u64`.
pub(crate) fn positive_int(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| *n >= 1)
}

/// Index of the first item of 1-based `page` with `per_page` items, saturating so that a
/// huge page number simply lands past the end.
pub(crate) fn page_offset(page: u64, per_page: u64) -> usize {
    let offset = page.saturating_sub(1).saturating_mul(per_page);
    usize::try_from(offset).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_date_accepts_only_zero_padded_real_dates() {
        assert_eq!(
            strict_date("2024-07-10"),
            NaiveDate::from_ymd_opt(2024, 7, 10)
        );
        assert_eq!(
            strict_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            "2024-7-10",
            "2023-02-29",
            "2023-02-30",
            "2023-07-10T00:00",
            " 2023-07-10",
            "2023/07/10",
            "20230-7-10",
            "",
            "2023-13-01",
        ] {
            assert_eq!(strict_date(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn positive_int_rejects_signs_zero_and_garbage() {
        assert_eq!(positive_int("1"), Some(1));
        assert_eq!(positive_int("100"), Some(100));
        assert_eq!(positive_int("007"), Some(7));
        for bad in [
            "0",
            "-1",
            "+1",
            "1.5",
            " 1",
            "abc",
            "",
            "99999999999999999999999",
        ] {
            assert_eq!(positive_int(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn query_pairs_decode_and_keep_the_first_duplicate() {
        let pairs = query_pairs("filteredSources=Chatbase%20site,API&page=2&page=3&x");
        assert_eq!(first(&pairs, "filteredSources"), Some("Chatbase site,API"));
        assert_eq!(first(&pairs, "page"), Some("2"));
        assert_eq!(first(&pairs, "size"), None);
    }

    #[test]
    fn page_offset_saturates() {
        assert_eq!(page_offset(1, 10), 0);
        assert_eq!(page_offset(3, 10), 20);
        assert_eq!(page_offset(u64::MAX, 100), usize::MAX);
    }
}
