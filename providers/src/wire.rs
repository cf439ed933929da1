//! Small pieces every adapter needs to read vendor JSON: lenient ids, timestamps,
//! error bodies, `Retry-After`, path encoding.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::ProviderError;
use crate::sanitize;
use crate::timestamp;

/// Everything but RFC 3986 unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes one path segment, so an id can never add segments or a query.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Deserializes an id that is documented as a string but may arrive as a number
/// (Chatling's ids are strings of digits); both are kept as text, losslessly.
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an integer")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// Like [`lenient_string`], for optional fields (missing or `null` → `None`).
pub fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "lenient_string")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// Parses an RFC 3339 timestamp with `Z` or any offset, with or without
/// fractional seconds, into UTC.
///
/// The instant must fall in the years 0000 to 9999 in UTC: callers are promised
/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` ([`format_time`](crate::model::format_time)),
/// which chrono prints only for those years. An offset can push a valid-looking
/// value out of them (`9999-12-31T23:59:59-23:59` is in the year 10000 in UTC),
/// and such a vendor value is refused rather than normalized into a timestamp
/// callers cannot parse. A refused value is quoted capped, not shortened, so
/// sanitizing sees it whole.
pub fn parse_time(field: &str, value: &str, status: u16) -> Result<DateTime<Utc>, ProviderError> {
    let invalid = |what: &str| ProviderError::InvalidBody {
        status,
        reason: format!("`{field}` {what}: {:?}", sanitize::cap(value)),
    };
    let value = value.trim();
    // The vendors' usual shape is read by hand; chrono reads every other.
    let t = match timestamp::parse_utc(value) {
        Some(t) => t,
        None => DateTime::parse_from_rfc3339(value)
            .map_err(|_| invalid("is not an RFC 3339 timestamp"))?
            .with_timezone(&Utc),
    };
    if !(0..=9999).contains(&t.year()) {
        return Err(invalid("is outside the years 0000 to 9999 in UTC"));
    }
    Ok(t)
}

/// Parses a vendor's body. The body is checked as UTF-8 once, whole (with
/// SIMD where the CPU has it), and parsed as text: parsed from bytes,
/// serde_json checks each string it reads on its own and each raw item again,
/// which costs more than one pass over the whole body. A body that is not UTF-8 is parsed from its bytes as before, so
/// what is accepted (invalid bytes in a field nobody reads) and the error a
/// bad body gets do not change.
pub fn from_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> serde_json::Result<T> {
    match simdutf8::basic::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// Turns a JSON error into an [`ProviderError::InvalidBody`]. serde_json quotes
/// the offending value, so the text is vendor text: capped, not shortened, so
/// sanitizing sees it whole.
pub fn invalid_json(status: u16, err: &serde_json::Error) -> ProviderError {
    ProviderError::InvalidBody {
        status,
        reason: sanitize::cap(&err.to_string()),
    }
}

/// Cuts text to at most `max` characters, on a character boundary, so a vendor's
/// long error page cannot bloat logs or responses.
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Reads a vendor error body's message: a JSON `message` or `error` string if
/// present (vendors.md), else the status's reason phrase. The message is only
/// capped ([`sanitize::cap`]): it is shortened when it is sanitized.
pub fn error_message(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<serde_json::Value>,
        error: Option<serde_json::Value>,
    }
    let from_body = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| {
            [b.message, b.error]
                .into_iter()
                .flatten()
                .find_map(|v| match v {
                    serde_json::Value::String(s) if !s.trim().is_empty() => Some(s),
                    serde_json::Value::Object(o) => {
                        o.get("message").and_then(|m| m.as_str()).map(str::to_owned)
                    }
                    _ => None,
                })
        });
    match from_body {
        Some(m) => sanitize::cap(m.trim()),
        None => reason_phrase(status).to_owned(),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "unexpected status",
    }
}

/// Parses `Retry-After` (delay-seconds or an HTTP-date) relative to `now`.
///
/// Total: never panics, whatever the vendor sends. Delay-seconds is digits only
/// (RFC 9110): a number too large for a `u64` saturates to `u64::MAX` seconds, as
/// a vendor asking to wait forever must not be read as sending no header (and so
/// waiting a default second); the caller bounds the wait. A sign, a fraction or
/// anything else that is not an HTTP-date is `None`. A date in the past is zero.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some(
        at.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Maps a non-success answer to an error the way every vendor's status codes mean
/// it (vendors.md "Errors"). `default_retry_after` supplies the vendor's documented
/// window when a 429 carries no `Retry-After`.
pub fn error_from_status(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    default_retry_after: impl FnOnce(DateTime<Utc>) -> Option<Duration>,
) -> ProviderError {
    let message = || error_message(status, body);
    match status {
        401 | 403 => ProviderError::Unauthorized {
            status,
            message: message(),
        },
        404 => ProviderError::NotFound { message: message() },
        429 => ProviderError::RateLimited {
            retry_after: retry_after
                .and_then(|v| parse_retry_after(v, now))
                .or_else(|| default_retry_after(now)),
        },
        400..=499 => ProviderError::Rejected {
            status,
            message: message(),
        },
        _ => ProviderError::Upstream {
            status,
            message: message(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn segments_cannot_escape_their_place_in_the_path() {
        assert_eq!(segment("8977617953"), "8977617953");
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
    }

    #[test]
    fn timestamps_with_offsets_and_fractions_become_utc() {
        let t = parse_time("created_at", "2024-06-14T17:45:34.250+02:00", 200).unwrap();
        assert_eq!(
            t,
            Utc.with_ymd_and_hms(2024, 6, 14, 15, 45, 34).unwrap()
                + chrono::Duration::milliseconds(250)
        );
        assert!(parse_time("created_at", "2024-06-14", 200).is_err());
    }

    fn reason(e: ProviderError) -> String {
        match e {
            ProviderError::InvalidBody {
                status: 200,
                reason,
            } => reason,
            other => panic!("expected InvalidBody from a 200, got {other:?}"),
        }
    }

    #[test]
    fn timestamps_an_offset_pushes_past_year_9999_are_refused() {
        let e = parse_time("created_at", "9999-12-31T23:59:59-23:59", 200).unwrap_err();
        assert_eq!(
            reason(e),
            "`created_at` is outside the years 0000 to 9999 in UTC: \"9999-12-31T23:59:59-23:59\""
        );
        assert!(parse_time("created_at", "9999-12-31T23:59:60-00:01", 200).is_err());
    }

    #[test]
    fn timestamps_an_offset_pulls_before_year_0000_are_refused() {
        let e = parse_time("updated_at", "0000-01-01T00:00:00+23:59", 200).unwrap_err();
        assert!(reason(e).starts_with("`updated_at` is outside the years 0000 to 9999"));
        assert!(parse_time("created_at", "0000-01-01T00:00:00.000000001+00:01", 200).is_err());
    }

    #[test]
    fn timestamps_at_the_year_boundaries_are_kept_and_print_four_digits() {
        for (value, normalized) in [
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            ("0000-01-01T23:59:00+23:59", "0000-01-01T00:00:00Z"),
            (
                "9999-12-31T23:59:59.999999999Z",
                "9999-12-31T23:59:59.999999999Z",
            ),
            ("9999-12-31T00:00:00-23:59", "9999-12-31T23:59:00Z"),
        ] {
            let t = parse_time("created_at", value, 200).unwrap();
            assert_eq!(crate::model::format_time(&t), normalized, "{value}");
        }
    }

    #[test]
    fn a_bad_timestamp_is_quoted_whole_for_sanitizing() {
        let value = format!("{}\u{1b}", "9".repeat(100));
        let r = reason(parse_time("created_at", &value, 200).unwrap_err());
        assert_eq!(
            r,
            format!("`created_at` is not an RFC 3339 timestamp: {value:?}")
        );
    }

    #[test]
    fn a_json_error_quoting_the_key_is_kept_whole_until_sanitized() {
        let key = "sk-live-0123456789abcdef";
        let body = format!(r#"{{"per_page": "{}{key}"}}"#, "p".repeat(190));
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Pages {
            per_page: u32,
        }
        let err = serde_json::from_str::<Pages>(&body).unwrap_err();
        let e = invalid_json(200, &err);
        assert!(reason(e.clone()).contains(key));
        let clean = reason(e.sanitize(key));
        assert!(!clean.contains("sk-live"), "{clean}");
        assert!(clean.contains("[redacted]"), "{clean}");
    }

    #[test]
    fn an_error_message_straddling_the_old_cut_keeps_no_key_prefix() {
        let key = "sk-live-0123456789abcdef";
        // The old code cut at 300 first, leaving `sk-live-01`, then looked for
        // the whole key and found nothing.
        for (pad, expected) in [(290, "[redacted]"), (295, "…")] {
            let body = format!(r#"{{"message": "{}{key}"}}"#, "m".repeat(pad));
            let now = Utc.with_ymd_and_hms(2024, 6, 14, 15, 45, 34).unwrap();
            let e = error_from_status(401, None, body.as_bytes(), now, |_| None);
            let ProviderError::Unauthorized { message, .. } = e.clone().sanitize(key) else {
                panic!("{e:?}");
            };
            assert_eq!(message, format!("{}{expected}", "m".repeat(pad)));
        }
    }

    #[test]
    fn vendor_messages_are_capped_not_shortened() {
        let body = format!(r#"{{"message": "{}"}}"#, "é".repeat(10_000));
        let m = error_message(500, body.as_bytes());
        assert_eq!(m.chars().count(), sanitize::MAX_VENDOR_TEXT_CHARS + 1);
    }

    #[test]
    fn error_messages_come_from_message_or_error_or_the_status() {
        assert_eq!(
            error_message(400, br#"{"message":"Invalid date"}"#),
            "Invalid date"
        );
        assert_eq!(error_message(400, br#"{"error":"bad"}"#), "bad");
        assert_eq!(
            error_message(400, br#"{"error":{"code":"x","message":"nested"}}"#),
            "nested"
        );
        assert_eq!(
            error_message(503, b"<html>oops</html>"),
            "Service Unavailable"
        );
        assert_eq!(error_message(500, b"").len(), "Internal Server Error".len());
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_seconds_too_large_for_u64_saturate() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        let forever = Some(Duration::from_secs(u64::MAX));
        for value in [
            "99999999999999999999999",
            "18446744073709551616",
            " 18446744073709551615 ",
        ] {
            assert_eq!(parse_retry_after(value, now), forever, "{value}");
        }
        for (value, secs) in [
            ("10000000000000000000", 10_000_000_000_000_000_000),
            ("9223372036854775807", 9_223_372_036_854_775_807),
            ("0", 0),
            ("007", 7),
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::from_secs(secs)),
                "{value}"
            );
        }
    }

    #[test]
    fn retry_after_signs_fractions_and_garbage_are_none() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        for value in [
            "-1",
            "-99999999999999999999999",
            "+5",
            "1.5",
            "",
            " ",
            "1e3",
            "٣",
            "Wed, 21 Oct 2015 07:28:30",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }

    #[test]
    fn retry_after_dates_in_the_past_are_zero_and_year_9999_is_fine() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        let far = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some((far - now).to_std().unwrap())
        );
        let max = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", max),
            Some(Duration::ZERO)
        );
        let min = DateTime::<Utc>::MIN_UTC;
        assert!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", min).is_some());
    }

    #[test]
    fn shorten_respects_character_boundaries() {
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("hi", 5), "hi");
    }
}
