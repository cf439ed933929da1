//! Chatling list assembly: a gateway `page`/`size` window built out of the vendor's
//! own fixed-size pages, date and source filtering done by the gateway, the scan
//! bound, and every way the vendor's paging can go wrong.
//!
//! Most tests run the adapter against [`Vendor`], a small in-test Chatling that
//! serves a newest-first stream in pages of its own `per_page`, the way Chatling
//! documents it (envelope, `pages.current_page/last_page/per_page`, an empty page
//! beyond the last), and records every page it was asked for.
#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Cow;
use std::num::NonZeroU32;

use chatgate_providers::{
    adapter, AdapterOptions, Dialect, ListQuery, ListResult, Method, Paging, ProviderError,
    ProviderKind, Source, UpstreamRequest, UpstreamResponse,
};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, SecondsFormat, Utc};
use common::*;
use serde_json::json;

const VENDOR_ID: &str = "chatling-bot-42";
const PATH: &str = "/chatbots/chatling-bot-42/conversations";
const DEFAULT_BOUND: usize = 50;

/// One conversation of the vendor's stream.
#[derive(Clone)]
struct Item {
    id: String,
    at: DateTime<Utc>,
    json: String,
}

fn item(id: &str, written: &str) -> Item {
    Item {
        id: id.to_owned(),
        at: t(written),
        json: format!(
            r#"{{"id":"{id}","contact_id":"contact-{id}","archived":0,"important":0,"created_at":"{written}","messages":[{{"text":"hello {id}","role":"user","created_at":"{written}"}}]}}"#
        ),
    }
}

/// `n` conversations, newest first, 7 h apart (so days are crossed), written with
/// `Z`, `+02:00` (often on the next local day) and `-05:00` with milliseconds;
/// every sixth shares the previous one's instant.
fn stream(n: usize) -> Vec<Item> {
    let base = t("2024-06-30T23:00:00Z");
    let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
    let minus5 = FixedOffset::west_opt(5 * 3600).unwrap();
    let mut items: Vec<Item> = Vec::with_capacity(n);
    for i in 0..n {
        let mut at = base - Duration::hours(7 * i as i64);
        if i % 3 == 2 {
            at += Duration::milliseconds(250);
        }
        if i % 6 == 5 {
            at = items[i - 1].at;
        }
        let written = match i % 3 {
            0 => at.to_rfc3339_opts(SecondsFormat::Secs, true),
            1 => at
                .with_timezone(&plus2)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            _ => at
                .with_timezone(&minus5)
                .to_rfc3339_opts(SecondsFormat::Millis, false),
        };
        items.push(item(&(8_977_600_000u64 - i as u64).to_string(), &written));
    }
    items
}

/// An in-test Chatling serving `items` (newest first).
struct Vendor<'a> {
    items: Cow<'a, [Item]>,
    /// `per_page` for the k-th call; the last value repeats.
    per_page: Vec<usize>,
    /// Every page asked for, in order.
    calls: Vec<u32>,
}

impl<'a> Vendor<'a> {
    fn new(items: impl Into<Cow<'a, [Item]>>, per_page: usize) -> Self {
        Self::changing(items, vec![per_page])
    }

    fn changing(items: impl Into<Cow<'a, [Item]>>, per_page: Vec<usize>) -> Self {
        Self {
            items: items.into(),
            per_page,
            calls: Vec::new(),
        }
    }

    fn answer(&mut self, request: &UpstreamRequest) -> UpstreamResponse {
        let page = requested_page(request);
        let pp = self.per_page[self.calls.len().min(self.per_page.len() - 1)];
        self.calls.push(page);
        ok(page_body(&self.items, page as usize, pp))
    }
}

/// Checks the request is Chatling's documented list call and returns its page.
fn requested_page(request: &UpstreamRequest) -> u32 {
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, PATH);
    assert_eq!(request.json_body, None);
    let q = pairs(request);
    assert_eq!(q.len(), 2, "only page and sort: {q:?}");
    assert_eq!(q[0].0, "page");
    assert_eq!(q[1], ("sort", "date_desc"));
    let page: u32 = q[0].1.parse().unwrap();
    assert!(page >= 1);
    page
}

/// One page of `items` as Chatling answers it.
fn page_body(items: &[Item], page: usize, per_page: usize) -> String {
    let n = items.len();
    let last_page = n.div_ceil(per_page).max(1);
    let from = ((page - 1) * per_page).min(n);
    let to = (from + per_page).min(n);
    page_body_raw(page, last_page, per_page, &items[from..to])
}

fn page_body_raw(current: usize, last: usize, per_page: usize, items: &[Item]) -> String {
    let conversations: Vec<&str> = items.iter().map(|i| i.json.as_str()).collect();
    format!(
        r#"{{"status":"success","data":{{"pages":{{"current_page":{current},"last_page":{last},"per_page":{per_page}}},"conversations":[{}]}}}}"#,
        conversations.join(",")
    )
}

fn chatling(max_scan_pages: u32) -> Box<dyn chatgate_providers::Adapter> {
    adapter(
        ProviderKind::Chatling,
        &options(Dialect::Current, max_scan_pages),
    )
}

fn run(
    vendor: &mut Vendor<'_>,
    q: &ListQuery,
    hint: Option<usize>,
    max_scan_pages: u32,
) -> Result<ListResult, ProviderError> {
    let chatling = chatling(max_scan_pages);
    let hint = hint.map(|h| NonZeroU32::new(h as u32).unwrap());
    let mut op = chatling.list(target(VENDOR_ID), q, hint);
    drive(op.as_mut(), |r| vendor.answer(r)).0
}

fn item_ids(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.id.clone()).collect()
}

// ---------------------------------------------------------------------------
// The documented list page, normalized
// ---------------------------------------------------------------------------

#[test]
fn chatling_documented_list_page_normalizes_exactly() {
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(1, 5), None);
    let (result, request) = one_call(op.as_mut(), ok(fixture("chatling/list_page_1_of_11.json")));
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, PATH);
    assert_eq!(pairs(&request), [("page", "1"), ("sort", "date_desc")]);
    let result = result.unwrap();
    assert!(result.page.has_more, "page 1 of 11");
    assert_eq!(result.vendor_page_size, NonZeroU32::new(5));
    assert_eq!(
        json_list(&result),
        json!([
            documented_conversation_normalized(),
            {
                "id": "8977617952",
                "chatbot_id": "support",
                "provider": "chatling",
                "created_at": "2024-06-14T09:12:03Z",
                "updated_at": "2024-06-14T09:12:10Z",
                "customer": "b7f2c1d0-9a3e-4f55-8c21-0d6e5a4b3c21",
                "source": "unspecified",
                "messages": [
                    {"role": "user", "content": "How do I reset my password?", "created_at": "2024-06-14T09:12:03Z"},
                    {
                        "role": "assistant",
                        "content": "You can reset it from Settings > Security.",
                        "created_at": "2024-06-14T09:12:10Z",
                        "sources": [{"type": "webpage", "title": "Security settings - Chatling Documentation", "url": "https://docs.chatling.ai/settings/security"}]
                    }
                ]
            },
            {
                "id": "8977617950",
                "chatbot_id": "support",
                "provider": "chatling",
                "created_at": "2024-06-13T22:40:00Z",
                "updated_at": null,
                "customer": null,
                "source": "unspecified",
                "messages": []
            },
            {
                "id": "8977617949",
                "chatbot_id": "support",
                "provider": "chatling",
                "created_at": "2024-06-13T18:05:00Z",
                "updated_at": "2024-06-13T18:05:00Z",
                "customer": "0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5",
                "source": "unspecified",
                "messages": [
                    {"role": "system", "content": "Welcome! Ask me anything about Chatling.", "created_at": "2024-06-13T18:05:00Z"}
                ]
            },
            {
                "id": "8977617948",
                "chatbot_id": "support",
                "provider": "chatling",
                "created_at": "2024-06-13T07:00:00Z",
                "updated_at": "2024-06-13T07:03:00Z",
                "customer": "5e6f7a8b-9c0d-1e2f-3a4b-5c6d7e8f9a0b",
                "source": "unspecified",
                "messages": [
                    {"role": "user", "content": "I'd like to talk to a person.", "created_at": "2024-06-13T07:00:00Z"},
                    {"role": "assistant", "vendor_role": "agent", "content": "Hi, I'm Priya from the support team. Let me look into your account.", "created_at": "2024-06-13T07:01:00Z"},
                    {"role": "user", "content": "Thanks, that fixed it.", "created_at": "2024-06-13T07:03:00Z"}
                ]
            }
        ])
    );
}

#[test]
fn chatling_bot_role_becomes_assistant() {
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(1, 1), NonZeroU32::new(5));
    let (result, _) = one_call(op.as_mut(), ok(fixture("chatling/list_page_1_of_11.json")));
    let messages = &result.unwrap().page.conversations[0].messages;
    let bot_messages: Vec<_> = messages
        .iter()
        .filter(|m| m.content.starts_with("System variables") || m.content.starts_with("**Hello"))
        .collect();
    assert_eq!(bot_messages.len(), 2);
    for m in bot_messages {
        assert_eq!(m.role, chatgate_providers::Role::Assistant);
        assert_eq!(
            m.vendor_role, None,
            "`bot` is a documented role, not an unknown one"
        );
    }
}

#[test]
fn chatling_raw_is_present_only_with_include_raw_and_byte_identical() {
    let text = fixture_text("chatling/list_page_1_of_11.json");
    let objects = array_items(value_after_key(&text, "conversations"));
    assert_eq!(objects.len(), 5);

    let chatling = chatling(50);
    let mut q = query(1, 5);
    q.include_raw = true;
    let mut op = chatling.list(target(VENDOR_ID), &q, None);
    let (result, _) = one_call(op.as_mut(), ok(fixture("chatling/list_page_1_of_11.json")));
    let result = result.unwrap();
    let raws: Vec<&str> = result
        .page
        .conversations
        .iter()
        .map(|c| c.raw.as_ref().unwrap().get())
        .collect();
    assert_eq!(raws, objects);
    // `archived`, `important`, `is_ai_kb_response` survive only in raw.
    let first = json_of(&result.page.conversations[0]);
    assert_eq!(first["raw"]["important"], 1);
    assert_eq!(first["raw"]["messages"][0]["is_ai_kb_response"], true);
    assert!(first.get("important").is_none());

    let mut op = chatling.list(target(VENDOR_ID), &query(1, 5), None);
    let (result, _) = one_call(op.as_mut(), ok(fixture("chatling/list_page_1_of_11.json")));
    let result = result.unwrap();
    assert!(result.page.conversations.iter().all(|c| c.raw.is_none()));
    assert!(json_of(&result.page.conversations[0]).get("raw").is_none());
}

#[test]
fn chatling_raw_survives_a_date_scan_byte_identical() {
    let items = stream(12);
    let mut vendor = Vendor::new(&items, 5);
    let mut q = query(1, 100);
    q.include_raw = true;
    q.dates = dates(Some("2024-06-28"), None);
    let result = run(&mut vendor, &q, None, 50).unwrap();
    assert!(!result.page.conversations.is_empty());
    for c in &result.page.conversations {
        let expected = &items.iter().find(|i| i.id == c.id).unwrap().json;
        assert_eq!(c.raw.as_ref().unwrap().get(), expected);
    }
}

#[test]
fn chatling_chatbot_id_is_percent_encoded_into_one_path_segment() {
    let chatling = chatling(50);
    let mut op = chatling.list(
        chatgate_providers::Target {
            bot: "support",
            chatbot_id: "a/b?c d",
        },
        &query(1, 5),
        None,
    );
    let (_, request) = one_call(op.as_mut(), ok(fixture("chatling/list_empty.json")));
    assert_eq!(request.path, "/chatbots/a%2Fb%3Fc%20d/conversations");
}

#[test]
fn chatling_pages_in_vendor_sized_pages() {
    let chatling = chatling(50);
    assert_eq!(chatling.kind(), ProviderKind::Chatling);
    assert_eq!(chatling.paging(), Paging::VendorSized);
}

#[test]
fn chatling_empty_stream_is_an_empty_last_page() {
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(1, 10), None);
    let (result, _) = one_call(op.as_mut(), ok(fixture("chatling/list_empty.json")));
    let result = result.unwrap();
    assert!(result.page.conversations.is_empty());
    assert!(!result.page.has_more);
    assert_eq!(result.vendor_page_size, NonZeroU32::new(5));
}

// ---------------------------------------------------------------------------
// Unfiltered windows: every combination against the in-test vendor
// ---------------------------------------------------------------------------

/// The pages an adapter needs for an unfiltered window, in order: a probe when
/// it cannot know where the window starts (no or a wrong hint), then exactly the
/// vendor pages the window covers (or the one page proving it is empty).
fn expected_window_calls(
    n: usize,
    pp: usize,
    size: usize,
    page: usize,
    hint: Option<usize>,
) -> Vec<u32> {
    let start = (page - 1) * size;
    let last = n.div_ceil(pp).max(1);
    let first = start / pp + 1;
    let end = if start + size <= n {
        (start + size - 1) / pp + 1
    } else {
        last.max(first)
    };
    let probe = match hint {
        None => 1,
        Some(h) => start / h + 1,
    };
    let mut pages = Vec::new();
    if probe != first {
        pages.push(probe as u32);
    }
    pages.extend((first..=end).map(|p| p as u32));
    pages
}

#[test]
fn chatling_window_is_the_exact_newest_first_slice_for_every_size_page_and_hint() {
    let mut cases = 0;
    let mut scan_limited = 0;
    let mut probes_avoided = 0;
    for pp in [1, 2, 3, 4, 5, 6, 7, 15, 25] {
        let mut ns = vec![0, 1, pp, 2 * pp + 1, 83];
        ns.sort_unstable();
        ns.dedup();
        let mut hints = vec![None, Some(pp), Some(pp + 3)];
        if pp > 1 {
            hints.push(Some(pp - 1));
        }
        for n in ns {
            let items = stream(n);
            let all_ids = item_ids(&items);
            for size in (1..=12).chain([100]) {
                let pages = n.div_ceil(size).max(1) + 1;
                for page in 1..=pages {
                    let start = (page - 1) * size;
                    let expected_ids = &all_ids[start.min(n)..(start + size).min(n)];
                    for &hint in &hints {
                        cases += 1;
                        let mut vendor = Vendor::new(&items, pp);
                        let result = run(&mut vendor, &query(page as u32, size as u32), hint, 50);
                        let expected_calls = expected_window_calls(n, pp, size, page, hint);
                        if expected_calls.len() > DEFAULT_BOUND {
                            scan_limited += 1;
                            assert_eq!(
                                result.unwrap_err(),
                                ProviderError::ScanLimit { pages: 50 },
                                "pp={pp} n={n} size={size} page={page} hint={hint:?}"
                            );
                            assert_eq!(vendor.calls, expected_calls[..DEFAULT_BOUND]);
                            continue;
                        }
                        let result = result.unwrap_or_else(|e| {
                            panic!("pp={pp} n={n} size={size} page={page} hint={hint:?}: {e}")
                        });
                        assert_eq!(
                            ids(&result),
                            expected_ids,
                            "pp={pp} n={n} size={size} page={page} hint={hint:?}"
                        );
                        assert_eq!(
                            result.page.has_more,
                            n > start + size,
                            "has_more: pp={pp} n={n} size={size} page={page} hint={hint:?}"
                        );
                        assert_eq!(
                            vendor.calls, expected_calls,
                            "calls: pp={pp} n={n} size={size} page={page} hint={hint:?}"
                        );
                        assert_eq!(result.vendor_page_size, NonZeroU32::new(pp as u32));
                        if hint == Some(pp)
                            && expected_window_calls(n, pp, size, page, None) != expected_calls
                        {
                            probes_avoided += 1;
                        }
                    }
                }
            }
        }
    }
    // The grid really covers the interesting regions.
    assert!(cases > 10_000, "{cases}");
    assert!(
        scan_limited > 0,
        "some windows must exceed the default bound"
    );
    assert!(probes_avoided > 1_000, "{probes_avoided}");
}

#[test]
fn chatling_correct_hint_goes_straight_to_the_windows_page() {
    let mut vendor = Vendor::new(stream(83), 5);
    let result = run(&mut vendor, &query(3, 10), Some(5), 50).unwrap();
    assert_eq!(vendor.calls, [5, 6]);
    assert_eq!(ids(&result), item_ids(&stream(83)[20..30]));
    assert!(result.page.has_more);
}

#[test]
fn chatling_without_a_hint_probes_page_one_then_reads_the_window() {
    let mut vendor = Vendor::new(stream(83), 5);
    let result = run(&mut vendor, &query(3, 10), None, 50).unwrap();
    assert_eq!(vendor.calls, [1, 5, 6]);
    assert_eq!(ids(&result), item_ids(&stream(83)[20..30]));
    // What it learned makes the next request exact.
    let hint = result.vendor_page_size.map(|p| p.get() as usize);
    assert_eq!(hint, Some(5));
    let mut vendor = Vendor::new(stream(83), 5);
    run(&mut vendor, &query(4, 10), hint, 50).unwrap();
    assert_eq!(vendor.calls, [7, 8]);
}

#[test]
fn chatling_wrong_hint_costs_one_call_and_never_a_wrong_window() {
    // The hint says 25 (another Chatling list's size), the vendor uses 5.
    let mut vendor = Vendor::new(stream(83), 5);
    let result = run(&mut vendor, &query(3, 10), Some(25), 50).unwrap();
    assert_eq!(
        vendor.calls,
        [1, 5, 6],
        "page 1 under the wrong plan, then 5 and 6"
    );
    assert_eq!(ids(&result), item_ids(&stream(83)[20..30]));
    assert_eq!(result.vendor_page_size, NonZeroU32::new(5));
}

#[test]
fn chatling_window_ending_exactly_at_the_last_conversation_has_no_more() {
    // 10 conversations, vendor pages of 5, gateway pages of 5: page 2 is exactly
    // full and last; the vendor's last_page says so, so no extra call is needed.
    let mut vendor = Vendor::new(stream(10), 5);
    let result = run(&mut vendor, &query(2, 5), Some(5), 50).unwrap();
    assert_eq!(ids(&result), item_ids(&stream(10)[5..10]));
    assert!(!result.page.has_more);
    assert_eq!(vendor.calls, [2]);
}

#[test]
fn chatling_window_beyond_the_end_is_empty_and_last() {
    let mut vendor = Vendor::new(stream(7), 5);
    let result = run(&mut vendor, &query(9, 10), Some(5), 50).unwrap();
    assert!(result.page.conversations.is_empty());
    assert!(!result.page.has_more);
    assert_eq!(vendor.calls, [17]);
}

#[test]
fn chatling_unfiltered_window_needing_more_pages_than_the_bound_is_a_scan_limit() {
    // 3 vendor pages of 1 are needed for a window of 3.
    let mut vendor = Vendor::new(stream(10), 1);
    let err = run(&mut vendor, &query(1, 3), Some(1), 2).unwrap_err();
    assert_eq!(err, ProviderError::ScanLimit { pages: 2 });
    assert_eq!(vendor.calls, [1, 2]);
    assert!(!err.is_retryable());
    assert_eq!(err.upstream_status(), None);

    let mut vendor = Vendor::new(stream(10), 1);
    let result = run(&mut vendor, &query(1, 3), Some(1), 3).unwrap();
    assert_eq!(ids(&result), item_ids(&stream(10)[..3]));
}

// ---------------------------------------------------------------------------
// Source filters: Chatling has no channel, every conversation is `unspecified`
// ---------------------------------------------------------------------------

#[test]
fn chatling_source_filter_without_unspecified_makes_no_call() {
    for date_range in [dates(None, None), dates(Some("2024-06-01"), None)] {
        for hint in [None, NonZeroU32::new(5)] {
            let mut q = query(1, 10);
            q.sources = sources(&[Source::Api, Source::Whatsapp, Source::Website]);
            q.dates = date_range;
            let chatling = chatling(50);
            let mut op = chatling.list(target(VENDOR_ID), &q, hint);
            let (result, requests) = drive(op.as_mut(), |r| panic!("no call expected: {r:?}"));
            let result = result.unwrap();
            assert!(requests.is_empty());
            assert!(result.page.conversations.is_empty());
            assert!(!result.page.has_more);
            assert_eq!(result.vendor_page_size, hint, "nothing new learned");
        }
    }
}

#[test]
fn chatling_source_filter_with_unspecified_keeps_every_conversation() {
    for date_range in [
        dates(None, None),
        dates(Some("2024-06-20"), Some("2024-06-27")),
    ] {
        let mut plain = query(2, 7);
        plain.dates = date_range;
        let mut filtered = plain.clone();
        filtered.sources = sources(&[Source::Unspecified, Source::Api]);

        let mut a = Vendor::new(stream(40), 6);
        let mut b = Vendor::new(stream(40), 6);
        let plain = run(&mut a, &plain, None, 50).unwrap();
        let filtered = run(&mut b, &filtered, None, 50).unwrap();
        assert_eq!(ids(&plain), ids(&filtered));
        assert_eq!(ids(&plain).len(), 7);
        assert_eq!(plain.page.has_more, filtered.page.has_more);
        assert_eq!(a.calls, b.calls);
    }
}

// ---------------------------------------------------------------------------
// Date filters: scanned newest first from page 1
// ---------------------------------------------------------------------------

fn utc_day_in(at: &DateTime<Utc>, start: Option<NaiveDate>, end: Option<NaiveDate>) -> bool {
    let day = at.date_naive();
    start.is_none_or(|s| day >= s) && end.is_none_or(|e| day <= e)
}

/// What a minimal newest-first scan must do: the window, whether more may follow,
/// and the last vendor page it must read.
struct ScanExpectation {
    ids: Vec<String>,
    /// Whether more matches really exist.
    exact_more: bool,
    /// What the adapter can say having read only `stop_page` pages: exact, except
    /// when the window ends on the last item of a non-last vendor page.
    has_more: bool,
    stop_page: usize,
}

fn expected_scan(items: &[Item], pp: usize, q: &ListQuery) -> ScanExpectation {
    let (start, end) = (q.dates.start(), q.dates.end());
    let n = items.len();
    let last = n.div_ceil(pp).max(1);
    let page_of = |i: usize| i / pp + 1;
    let matches: Vec<usize> = (0..n)
        .filter(|&i| utc_day_in(&items[i].at, start, end))
        .collect();
    let skip = (q.page.get() as usize - 1) * q.size.get() as usize;
    let size = q.size.get() as usize;
    let window = &matches[skip.min(matches.len())..(skip + size).min(matches.len())];
    let exact_more = matches.len() > skip + size;
    let (has_more, stop_page) = if matches.len() >= skip + size {
        let w = matches[skip + size - 1];
        let next_on_same_page = w + 1 < n && page_of(w + 1) == page_of(w);
        let has_more = if next_on_same_page {
            utc_day_in(&items[w + 1].at, start, end)
        } else {
            page_of(w) < last
        };
        (has_more, page_of(w))
    } else {
        let first_older = (0..n).find(|&i| start.is_some_and(|s| items[i].at.date_naive() < s));
        (false, first_older.map_or(last, page_of))
    };
    ScanExpectation {
        ids: window.iter().map(|&i| items[i].id.clone()).collect(),
        exact_more,
        has_more,
        stop_page,
    }
}

/// Every page up to 12, else the first three, the middle and the last two (a
/// scan re-reads the stream from page 1 for every page, so all 84 are slow).
fn sample_pages(past_the_end: usize) -> Vec<usize> {
    if past_the_end <= 12 {
        return (1..=past_the_end).collect();
    }
    vec![1, 2, 3, past_the_end / 2, past_the_end - 1, past_the_end]
}

#[test]
fn chatling_date_filtered_window_is_the_exact_slice_for_every_range_size_and_page() {
    let items = stream(60);
    // The stream runs from 2024-06-30T23:00Z back to 2024-06-13T14:00Z.
    let ranges = [
        (Some("2024-06-20"), None),
        (None, Some("2024-06-25")),
        (Some("2024-06-15"), Some("2024-06-22")),
        (Some("2024-06-20"), Some("2024-06-20")),
        (Some("2024-06-30"), Some("2024-06-30")),
        (Some("2024-06-12"), Some("2024-06-14")),
        (Some("2024-01-01"), Some("2024-12-31")),
        (Some("2025-01-01"), None),
        (None, Some("2024-01-01")),
    ];
    let (mut cases, mut inexact, mut limited) = (0, 0, 0);
    for pp in [1, 2, 3, 4, 5, 6, 7, 15, 25] {
        for (start, end) in ranges {
            for size in [1, 2, 3, 5, 7, 10, 100] {
                let mut q = query(1, size);
                q.dates = dates(start, end);
                let matches = items
                    .iter()
                    .filter(|i| utc_day_in(&i.at, q.dates.start(), q.dates.end()))
                    .count();
                for page in sample_pages(matches.div_ceil(size as usize).max(1) + 1) {
                    q.page = chatgate_providers::PageNumber::new(page as u32).unwrap();
                    let expected = expected_scan(&items, pp, &q);
                    // A scan always starts at page 1, so a hint (right or wrong) must
                    // change nothing; the right one is checked on first pages only.
                    let hints = if page == 1 {
                        vec![None, Some(pp), Some(pp + 3)]
                    } else {
                        vec![None, Some(pp + 3)]
                    };
                    for hint in hints {
                        cases += 1;
                        let mut vendor = Vendor::new(&items, pp);
                        let result = run(&mut vendor, &q, hint, 50);
                        let expected_calls: Vec<u32> = (1..=expected.stop_page as u32).collect();
                        if expected.stop_page > DEFAULT_BOUND {
                            limited += 1;
                            assert_eq!(
                                result.unwrap_err(),
                                ProviderError::ScanLimit { pages: 50 },
                                "pp={pp} {start:?}..{end:?} size={size} page={page} hint={hint:?}"
                            );
                            assert_eq!(vendor.calls, expected_calls[..DEFAULT_BOUND]);
                            continue;
                        }
                        let result = result.unwrap_or_else(|e| {
                            panic!("pp={pp} {start:?}..{end:?} size={size} page={page} hint={hint:?}: {e}")
                        });
                        assert_eq!(
                            ids(&result),
                            expected.ids,
                            "pp={pp} {start:?}..{end:?} size={size} page={page} hint={hint:?}"
                        );
                        assert_eq!(
                            result.page.has_more, expected.has_more,
                            "has_more: pp={pp} {start:?}..{end:?} size={size} page={page} hint={hint:?}"
                        );
                        // Never claims "last" while more exist.
                        assert!(result.page.has_more || !expected.exact_more);
                        assert_eq!(
                            vendor.calls, expected_calls,
                            "calls: pp={pp} {start:?}..{end:?} size={size} page={page} hint={hint:?}"
                        );
                        if result.page.has_more && !expected.exact_more {
                            inexact += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 1_500, "{cases}");
    assert!(limited > 0, "some scans must exceed the default bound");
    // The one inexact case exists (a window ending a vendor page): see
    // `chatling_date_scan_cannot_know_there_is_no_more_when_the_window_ends_a_vendor_page`.
    assert!(inexact > 0);
}

#[test]
fn chatling_date_scan_cannot_know_there_is_no_more_when_the_window_ends_a_vendor_page() {
    // Items 0..4 are on 2024-06-30, the rest older. A window of 4 ending on
    // page 1's last item (vendor pages of 4) stops there: has_more is true though
    // page 2 holds no match, because knowing would cost another call.
    let items = stream(10);
    let mut q = query(1, 4);
    q.dates = dates(Some("2024-06-30"), None);
    assert_eq!(
        items
            .iter()
            .filter(|i| i.at.date_naive() >= d("2024-06-30"))
            .count(),
        4
    );
    let mut vendor = Vendor::new(&items, 4);
    let result = run(&mut vendor, &q, None, 50).unwrap();
    assert_eq!(ids(&result), item_ids(&items[..4]));
    assert!(result.page.has_more);
    assert_eq!(vendor.calls, [1]);

    // The next page is then empty and last.
    q.page = chatgate_providers::PageNumber::new(2).unwrap();
    let mut vendor = Vendor::new(&items, 4);
    let result = run(&mut vendor, &q, None, 50).unwrap();
    assert!(result.page.conversations.is_empty());
    assert!(!result.page.has_more);
    assert_eq!(vendor.calls, [1, 2]);
}

#[test]
fn chatling_date_filter_is_inclusive_on_the_utc_date() {
    let items = vec![
        item("7", "2024-06-16T00:00:00Z"),
        item("6", "2024-06-15T23:59:59.999Z"),
        item("5", "2024-06-15T12:00:00Z"),
        item("4", "2024-06-15T14:00:00+02:00"),
        item("3", "2024-06-15T00:00:00Z"),
        item("2", "2024-06-15T01:30:00+02:00"),
        item("1", "2024-06-14T23:00:00Z"),
    ];
    let cases: [(Option<&str>, Option<&str>, &[&str]); 5] = [
        (
            Some("2024-06-15"),
            Some("2024-06-15"),
            &["6", "5", "4", "3"],
        ),
        (Some("2024-06-15"), None, &["7", "6", "5", "4", "3"]),
        (None, Some("2024-06-15"), &["6", "5", "4", "3", "2", "1"]),
        (Some("2024-06-14"), Some("2024-06-14"), &["2", "1"]),
        (Some("2024-06-17"), None, &[]),
    ];
    for (start, end, expected) in cases {
        for pp in [1, 2, 3, 7] {
            let mut q = query(1, 10);
            q.dates = dates(start, end);
            let mut vendor = Vendor::new(&items, pp);
            let result = run(&mut vendor, &q, None, 50).unwrap();
            assert_eq!(ids(&result), expected, "{start:?}..{end:?} pp={pp}");
            assert!(!result.page.has_more);
        }
    }
}

#[test]
fn chatling_conversations_sharing_a_timestamp_keep_vendor_order_across_pages() {
    let items = vec![
        item("5", "2024-06-15T12:00:00Z"),
        item("4", "2024-06-15T10:00:00Z"),
        item("3", "2024-06-15T12:00:00+02:00"),
        item("2", "2024-06-15T10:00:00Z"),
        item("1", "2024-06-14T10:00:00Z"),
    ];
    for size in 1..=4 {
        let mut got = Vec::new();
        for page in 1..=4 {
            let mut q = query(page, size);
            q.dates = dates(Some("2024-06-15"), Some("2024-06-15"));
            let mut vendor = Vendor::new(&items, 2);
            got.extend(ids(&run(&mut vendor, &q, None, 50).unwrap()));
        }
        assert_eq!(got, ["5", "4", "3", "2"], "size={size}");
    }
}

#[test]
fn chatling_date_scan_stops_at_the_bound_with_scan_limit() {
    let mut q = query(1, 10);
    q.dates = dates(Some("2024-01-01"), Some("2024-06-08"));
    let mut vendor = Vendor::new(stream(83), 5);
    let err = run(&mut vendor, &q, Some(5), 3).unwrap_err();
    assert_eq!(err, ProviderError::ScanLimit { pages: 3 });
    assert_eq!(vendor.calls, [1, 2, 3]);
    assert!(err.to_string().contains("max_scan_pages"), "{err}");
}

#[test]
fn chatling_date_scan_ends_at_the_first_older_conversation() {
    let mut q = query(1, 100);
    q.dates = dates(Some("2024-06-29"), None);
    let mut vendor = Vendor::new(stream(83), 2);
    let result = run(&mut vendor, &q, None, 50).unwrap();
    assert_eq!(ids(&result), item_ids(&stream(83)[..7]));
    assert!(!result.page.has_more);
    assert_eq!(
        vendor.calls,
        [1, 2, 3, 4],
        "item 7 on page 4 is older: stop there"
    );
}

#[test]
fn chatling_out_of_order_conversations_under_a_date_filter_are_an_invalid_body() {
    let mut q = query(1, 10);
    q.dates = dates(Some("2024-06-01"), None);

    // Within one page.
    let ascending: Vec<Item> = stream(4).into_iter().rev().collect();
    let mut vendor = Vendor::new(&ascending, 5);
    let reason = invalid_body_reason(&run(&mut vendor, &q, None, 50).unwrap_err(), 200);
    assert!(reason.contains("newest first"), "{reason}");

    // Across a page boundary: page 2 starts newer than page 1 ended.
    // Pages of 2: [b, c] (ordered), then [a, d] where a is the newest of all.
    let s = stream(4);
    let items = vec![s[1].clone(), s[2].clone(), s[0].clone(), s[3].clone()];
    assert!(items[0].at > items[1].at && items[2].at > items[3].at);
    assert!(
        items[1].at < items[2].at,
        "really out of order across pages"
    );
    let mut vendor = Vendor::new(&items, 2);
    invalid_body_reason(&run(&mut vendor, &q, None, 50).unwrap_err(), 200);
    assert_eq!(vendor.calls, [1, 2]);
}

// ---------------------------------------------------------------------------
// The vendor's paging shifting or lying
// ---------------------------------------------------------------------------

#[test]
fn chatling_per_page_change_mid_window_replans_once_and_returns_the_right_window() {
    let items = stream(20);
    // Page 1 under per_page 5, then the vendor switches to 4.
    let mut vendor = Vendor::changing(&items, vec![5, 4]);
    let result = run(&mut vendor, &query(1, 8), None, 50).unwrap();
    assert_eq!(ids(&result), item_ids(&items[..8]));
    assert!(result.page.has_more);
    assert_eq!(result.vendor_page_size, NonZeroU32::new(4));
    assert_eq!(
        vendor.calls,
        [1, 2, 1, 2],
        "re-read from the window's first page"
    );

    // The same mid-window, under a later window.
    let mut vendor = Vendor::changing(&items, vec![5, 4]);
    let result = run(&mut vendor, &query(2, 6), Some(5), 50).unwrap();
    assert_eq!(ids(&result), item_ids(&items[6..12]));
    assert_eq!(vendor.calls, [2, 3, 2, 3]);
}

#[test]
fn chatling_per_page_changing_twice_mid_window_is_an_invalid_body() {
    let items = stream(20);
    // 5, then 4 (re-plan), then 3 while re-reading (fail).
    let mut vendor = Vendor::changing(&items, vec![5, 4, 4, 3]);
    let err = run(&mut vendor, &query(1, 8), None, 50).unwrap_err();
    let reason = invalid_body_reason(&err, 200);
    assert!(reason.contains("per_page"), "{reason}");
    assert_eq!(vendor.calls, [1, 2, 1, 2]);
}

#[test]
fn chatling_per_page_change_before_anything_was_kept_is_only_a_new_plan() {
    // 5, then 4 (re-plan, nothing kept), then 3 on the re-read's first page:
    // nothing from the old plan survives, so the window is still exact.
    let items = stream(20);
    let mut vendor = Vendor::changing(&items, vec![5, 4, 3]);
    let result = run(&mut vendor, &query(1, 8), None, 50).unwrap();
    assert_eq!(ids(&result), item_ids(&items[..8]));
    assert_eq!(result.vendor_page_size, NonZeroU32::new(3));
    assert_eq!(vendor.calls, [1, 2, 1, 2, 3]);
}

#[test]
fn chatling_per_page_change_mid_date_scan_restarts_once_then_fails() {
    let items = stream(30);
    let mut q = query(1, 100);
    q.dates = dates(Some("2024-06-25"), None);
    let expected: Vec<String> = items
        .iter()
        .filter(|i| i.at.date_naive() >= d("2024-06-25"))
        .map(|i| i.id.clone())
        .collect();
    assert!(expected.len() > 10);

    let mut vendor = Vendor::changing(&items, vec![5, 4]);
    let result = run(&mut vendor, &q, None, 50).unwrap();
    assert_eq!(ids(&result), expected);
    assert_eq!(
        &vendor.calls[..3],
        [1, 2, 1],
        "restart from page 1 after the change"
    );

    let mut vendor = Vendor::changing(&items, vec![5, 4, 4, 3]);
    invalid_body_reason(&run(&mut vendor, &q, None, 50).unwrap_err(), 200);
    assert_eq!(vendor.calls, [1, 2, 1, 2]);
}

#[test]
fn chatling_wrong_current_page_is_an_invalid_body() {
    let items = stream(20);
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(2, 5), NonZeroU32::new(5));
    let (result, requests) = drive(op.as_mut(), |r| {
        assert_eq!(requested_page(r), 2);
        // The vendor ignores `page` and always answers page 1.
        ok(page_body(&items, 1, 5))
    });
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("current_page"), "{reason}");
    assert_eq!(requests.len(), 1);
}

#[test]
fn chatling_short_non_last_page_is_an_invalid_body() {
    let items = stream(20);
    let mut q = query(1, 10);
    for scan in [false, true] {
        if scan {
            q.dates = dates(Some("2024-01-01"), None);
        }
        let chatling = chatling(50);
        let mut op = chatling.list(target(VENDOR_ID), &q, None);
        let (result, _) = drive(op.as_mut(), |_| ok(page_body_raw(1, 4, 5, &items[..4])));
        let reason = invalid_body_reason(&result.unwrap_err(), 200);
        assert!(reason.contains("holds 4 items"), "scan={scan}: {reason}");
    }
}

#[test]
fn chatling_page_with_more_items_than_per_page_is_an_invalid_body() {
    // Even on the last page, where a short page is fine, an overfull one is not.
    let items = stream(20);
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(1, 10), None);
    let (result, _) = drive(op.as_mut(), |_| ok(page_body_raw(1, 1, 5, &items[..6])));
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(
        reason.contains("6 items on a page of per_page 5"),
        "{reason}"
    );
}

#[test]
fn chatling_listed_messages_are_reversed_so_equal_times_keep_their_true_order() {
    // Chatling lists a conversation's messages newest first. Two messages in the
    // same second must come out in reverse of the vendor's order (oldest first),
    // and without times the reversal is the only ordering there is.
    let body = r#"{"status":"success","data":{"pages":{"current_page":1,"last_page":1,"per_page":5},"conversations":[
        {"id":"2","contact_id":null,"created_at":"2024-06-14T10:00:00+00:00","messages":[
            {"text":"third","role":"bot","created_at":"2024-06-14T10:00:02+00:00"},
            {"text":"second","role":"bot","created_at":"2024-06-14T10:00:01+00:00"},
            {"text":"first","role":"user","created_at":"2024-06-14T10:00:01+00:00"}]},
        {"id":"1","contact_id":null,"created_at":"2024-06-13T10:00:00+00:00","messages":[
            {"text":"answer","role":"bot"},
            {"text":"question","role":"user"}]}]}}"#;
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(1, 5), None);
    let (result, _) = one_call(op.as_mut(), ok(body));
    let result = result.unwrap();
    let contents = |i: usize| -> Vec<&str> {
        result.page.conversations[i]
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect()
    };
    assert_eq!(contents(0), ["first", "second", "third"]);
    assert_eq!(contents(1), ["question", "answer"]);
    assert_eq!(
        json_of(&result.page.conversations[1])["updated_at"],
        serde_json::Value::Null
    );
    assert_eq!(
        json_of(&result.page.conversations[1])["messages"][0]["created_at"],
        serde_json::Value::Null
    );
}

#[test]
fn chatling_per_page_zero_is_an_invalid_body() {
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(1, 10), None);
    let (result, _) = one_call(
        op.as_mut(),
        ok(fixture("chatling/invalid_per_page_zero.json")),
    );
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("per_page"), "{reason}");
}

#[test]
fn chatling_numeric_ids_and_missing_contact_are_read_as_text_and_null() {
    let body = r#"{"status":"success","data":{"pages":{"current_page":1,"last_page":1,"per_page":5},
        "conversations":[{"id":8977617999,"contact_id":4711,"created_at":"2024-06-20T08:10:00+00:00"},
                         {"id":"8977617998","created_at":"2024-06-20T08:00:00+00:00","messages":null}]}}"#;
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(1, 10), None);
    let (result, _) = one_call(op.as_mut(), ok(body));
    let result = result.unwrap();
    assert_eq!(
        json_list(&result),
        json!([
            {"id": "8977617999", "chatbot_id": "support", "provider": "chatling",
             "created_at": "2024-06-20T08:10:00Z", "updated_at": null, "customer": "4711",
             "source": "unspecified", "messages": []},
            {"id": "8977617998", "chatbot_id": "support", "provider": "chatling",
             "created_at": "2024-06-20T08:00:00Z", "updated_at": null, "customer": null,
             "source": "unspecified", "messages": []}
        ])
    );
}

#[test]
fn chatling_default_options_bound_a_scan_at_fifty_vendor_pages() {
    assert_eq!(AdapterOptions::default().max_scan_pages.get(), 50);
    let mut q = query(1, 10);
    q.dates = dates(None, Some("2020-01-01"));
    let mut vendor = Vendor::new(stream(83), 1);
    let chatling = adapter(ProviderKind::Chatling, &AdapterOptions::default());
    let mut op = chatling.list(target(VENDOR_ID), &q, None);
    let err = drive(op.as_mut(), |r| vendor.answer(r)).0.unwrap_err();
    assert_eq!(err, ProviderError::ScanLimit { pages: 50 });
    assert_eq!(vendor.calls.len(), 50);
}

/// A vendor whose stream gains one new conversation at its head after every one
/// of the first `arrivals` calls (Chatling lists newest first, so every later
/// page moves down by one).
fn growing_vendor(
    old: &[Item],
    arrivals: usize,
) -> impl FnMut(&UpstreamRequest) -> UpstreamResponse + '_ {
    let mut items = old.to_vec();
    let mut calls = 0;
    move |request| {
        let page = requested_page(request) as usize;
        let body = page_body(&items, page, 5);
        calls += 1;
        if calls <= arrivals {
            let at = format!("2024-07-01T08:00:{calls:02}Z");
            items.insert(0, item(&format!("99{calls:08}"), &at));
        }
        ok(body)
    }
}

#[test]
fn chatling_conversation_arriving_mid_window_is_reread_not_duplicated() {
    let old = stream(20);
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(2, 6), NonZeroU32::new(5));
    let (result, requests) = drive(op.as_mut(), growing_vendor(&old, 1));
    let result = result.unwrap();
    let pages: Vec<u32> = requests.iter().map(requested_page).collect();
    // Page 3 repeats page 2's last conversation: read the window again.
    assert_eq!(pages, [2, 3, 2, 3]);
    // Positions 6..12 of the grown stream (one newer conversation on top).
    assert_eq!(ids(&result), item_ids(&old[5..11]));
    assert!(result.page.has_more);
}

#[test]
fn chatling_conversation_arriving_mid_date_scan_is_reread_not_duplicated() {
    let old = stream(20);
    let mut q = query(1, 100);
    q.dates = dates(Some("2024-06-27"), Some("2024-06-30"));
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &q, None);
    let (result, requests) = drive(op.as_mut(), growing_vendor(&old, 1));
    let result = result.unwrap();
    let expected: Vec<String> = old
        .iter()
        .filter(|i| utc_day_in(&i.at, Some(d("2024-06-27")), Some(d("2024-06-30"))))
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(
        ids(&result),
        expected,
        "the new conversation is after the range"
    );
    let pages: Vec<u32> = requests.iter().map(requested_page).collect();
    assert_eq!(&pages[..3], [1, 2, 1], "restart the scan at page 1");
}

#[test]
fn chatling_conversations_arriving_during_every_read_are_an_invalid_body() {
    let old = stream(20);
    let chatling = chatling(50);
    let mut op = chatling.list(target(VENDOR_ID), &query(2, 6), NonZeroU32::new(5));
    let (result, requests) = drive(op.as_mut(), growing_vendor(&old, usize::MAX));
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("shifted again"), "{reason}");
    assert_eq!(requests.len(), 4);
}
