//! Helpers shared by the adapter tests: fixtures, queries, a driver that runs an
//! operation against a scripted vendor, and a tiny JSON scanner that finds a
//! vendor object's exact bytes (to check `raw` without trusting serde_json's own
//! raw-value machinery).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use bytes::Bytes;
use chatgate_providers::{
    adapter, AdapterOptions, Conversation, DateRange, Dialect, ListQuery, ListResult, Operation,
    PageNumber, PageSize, ProviderError, ProviderKind, Source, Step, Target, UpstreamRequest,
    UpstreamResponse,
};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::Value;

/// The bot's name in config: what every conversation's `chatbot_id` must be.
pub const BOT: &str = "support";

/// A target whose vendor id differs from the bot name, so a mix-up shows.
pub fn target(vendor_id: &str) -> Target<'_> {
    Target {
        bot: BOT,
        chatbot_id: vendor_id,
    }
}

/// Reads `providers/tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}")))
}

/// The fixture as text.
pub fn fixture_text(rel: &str) -> String {
    String::from_utf8(fixture(rel).to_vec()).unwrap()
}

/// A fixed arrival time: 10:20:45 UTC (45 s into a minute).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 7, 1, 10, 20, 45).unwrap()
}

/// An RFC 3339 instant.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A `YYYY-MM-DD` date.
pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// An answer with a status and body, no `Retry-After`, arriving at [`now`].
pub fn answer(status: u16, body: impl Into<Bytes>) -> UpstreamResponse {
    UpstreamResponse {
        status,
        retry_after: None,
        body: body.into(),
        received_at: now(),
    }
}

/// A 200 answer.
pub fn ok(body: impl Into<Bytes>) -> UpstreamResponse {
    answer(200, body)
}

/// Options with a dialect and scan bound.
pub fn options(dialect: Dialect, max_scan_pages: u32) -> AdapterOptions {
    AdapterOptions {
        dialect,
        max_scan_pages: NonZeroU32::new(max_scan_pages).unwrap(),
    }
}

/// A list query built from parts (everything else default).
pub fn query(page: u32, size: u32) -> ListQuery {
    ListQuery {
        page: PageNumber::new(page).unwrap(),
        size: PageSize::new(size).unwrap(),
        ..ListQuery::default()
    }
}

/// A date range from optional `YYYY-MM-DD` ends.
pub fn dates(start: Option<&str>, end: Option<&str>) -> DateRange {
    DateRange::new(start.map(d), end.map(d)).unwrap()
}

/// A source filter.
pub fn sources(items: &[Source]) -> Option<BTreeSet<Source>> {
    Some(items.iter().copied().collect())
}

/// Runs an operation to completion, answering every request with `vendor`.
/// Returns the outcome and every request the operation made, in order.
pub fn drive<T>(
    op: &mut dyn Operation<T>,
    mut vendor: impl FnMut(&UpstreamRequest) -> UpstreamResponse,
) -> (Result<T, ProviderError>, Vec<UpstreamRequest>) {
    let mut requests = Vec::new();
    let mut step = op.start();
    loop {
        match step {
            Ok(Step::Done(value)) => return (Ok(value), requests),
            Err(e) => return (Err(e), requests),
            Ok(Step::Send(request)) => {
                assert!(requests.len() < 10_000, "the operation never finishes");
                let response = vendor(&request);
                requests.push(request);
                step = op.on_response(response);
            }
        }
    }
}

/// Runs an operation that must make exactly one call, answered by `response`.
pub fn one_call<T>(
    op: &mut dyn Operation<T>,
    response: UpstreamResponse,
) -> (Result<T, ProviderError>, UpstreamRequest) {
    let mut response = Some(response);
    let (result, mut requests) = drive(op, |_| {
        response
            .take()
            .expect("the operation made a second call where one was expected")
    });
    assert_eq!(requests.len(), 1, "exactly one vendor call");
    (result, requests.remove(0))
}

/// Lists with `kind`'s adapter against a single canned answer.
pub fn list_once(
    kind: ProviderKind,
    vendor_id: &str,
    q: &ListQuery,
    response: UpstreamResponse,
) -> (Result<ListResult, ProviderError>, UpstreamRequest) {
    let adapter = adapter(kind, &AdapterOptions::default());
    let mut op = adapter.list(target(vendor_id), q, None);
    one_call(op.as_mut(), response)
}

/// The normalized JSON a caller would see for one conversation.
pub fn json_of(c: &Conversation) -> Value {
    serde_json::to_value(c).unwrap()
}

/// The normalized JSON of every conversation of a page.
pub fn json_list(result: &ListResult) -> Value {
    Value::Array(result.page.conversations.iter().map(json_of).collect())
}

/// The ids of a page's conversations, in order.
pub fn ids(result: &ListResult) -> Vec<String> {
    result
        .page
        .conversations
        .iter()
        .map(|c| c.id.clone())
        .collect()
}

/// The exact text of the JSON value that follows the first `"key":` in `text`.
pub fn value_after_key<'a>(text: &'a str, key: &str) -> &'a str {
    let needle = format!("\"{key}\"");
    let at = text.find(&needle).unwrap_or_else(|| panic!("no {needle}"));
    let rest = &text[at + needle.len()..];
    let colon = rest.find(':').unwrap();
    let value_start = at + needle.len() + colon + 1;
    let offset = text[value_start..]
        .find(|c: char| !c.is_whitespace())
        .unwrap();
    let start = value_start + offset;
    &text[start..start + value_len(&text[start..])]
}

/// The exact text of each item of a JSON array given as text.
pub fn array_items(array: &str) -> Vec<&str> {
    assert!(array.starts_with('['));
    let mut items = Vec::new();
    let mut i = 1;
    loop {
        i += array[i..].find(|c: char| !c.is_whitespace()).unwrap();
        match array.as_bytes()[i] {
            b']' => return items,
            b',' => i += 1,
            _ => {
                let len = value_len(&array[i..]);
                items.push(&array[i..i + len]);
                i += len;
            }
        }
    }
}

/// The length of the object or array that starts `text` (strings and escapes aware).
fn value_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    assert!(
        matches!(bytes[0], b'{' | b'['),
        "expected an object or array"
    );
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced JSON value");
}

/// Asserts that `err` is `InvalidBody` with `status`, and returns its reason.
pub fn invalid_body_reason(err: &ProviderError, status: u16) -> String {
    match err {
        ProviderError::InvalidBody { status: s, reason } => {
            assert_eq!(*s, status, "InvalidBody status");
            reason.clone()
        }
        other => panic!("expected InvalidBody, got {other:?}"),
    }
}

/// The JSON body a request carries, as a value (Chatzuri's legacy dialect).
pub fn json_body(request: &UpstreamRequest) -> Value {
    serde_json::from_slice(request.json_body.as_deref().expect("a JSON body")).unwrap()
}

/// Owned query pairs, for comparing against literals.
pub fn pairs(request: &UpstreamRequest) -> Vec<(&'static str, &str)> {
    request
        .query
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect()
}

/// Chatling's documented retrieve-conversation example as the gateway must
/// normalize it, shared by the list and the detail tests.
pub fn documented_conversation_normalized() -> Value {
    serde_json::from_slice(&fixture("chatling/retrieve_conversation.normalized.json")).unwrap()
}
