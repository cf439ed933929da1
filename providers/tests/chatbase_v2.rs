//! Chatbase API v2: the export endpoint's documented shapes normalized exactly,
//! its error envelope, one conversation through `conversationId`, and gateway
//! `page`/`size` windows assembled over cursor pages of at most 20, with and
//! without remembered resume points.
//!
//! The window tests run the adapter against [`Vendor`], a small in-test Chatbase
//! v2 serving a newest-first stream through keyset cursors (a cursor names the
//! last conversation of its page, as the documented example cursor
//! `{"t": …, "id": …}` does), honouring `limit` (1–20, anything else refused as
//! the vendor does), `startDate`/`endDate` and `source`, and recording every
//! call. [`Memory`] plays the gateway's part: it keeps the resume points each
//! page returns and hands back the nearest one before a window's start.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chatgate_providers::{
    adapter, Adapter, Conversation, Dialect, ListQuery, ListResult, Method, PageNumber, PageSize,
    ProviderError, ProviderKind, ResumePoint, Source, Step, UpstreamRequest, UpstreamResponse,
};
use chrono::{DateTime, NaiveDate, Utc};
use common::*;
use serde_json::{json, Value};

const AGENT: &str = "5QHA6VB-DIAbBhxwqxfdi";
const PATH: &str = "/agents/5QHA6VB-DIAbBhxwqxfdi/conversations/export";
const DOCUMENTED_CURSOR: &str = "eyJ0IjoiMjAyNC0wMS0xNVQxMDozMDowMC4wMDBaIiwiaWQiOiJhYmMxMjMifQ==";

fn v2(max_scan_pages: u32) -> Box<dyn Adapter> {
    adapter(
        ProviderKind::ChatbaseV2,
        &options(Dialect::Current, max_scan_pages),
    )
}

fn list_fixture(q: &ListQuery, name: &str) -> (Result<ListResult, ProviderError>, UpstreamRequest) {
    let a = v2(50);
    let mut op = a.list(target(AGENT), q, None);
    one_call(op.as_mut(), ok(fixture(&format!("chatbase_v2/{name}"))))
}

fn error_of(status: u16, body: &str, retry_after: Option<&str>) -> ProviderError {
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 10), None);
    let response = UpstreamResponse {
        retry_after: retry_after.map(str::to_owned),
        ..answer(status, body.to_owned())
    };
    one_call(op.as_mut(), response).0.unwrap_err()
}

// ---------------------------------------------------------------------------
// The documented shapes
// ---------------------------------------------------------------------------

#[test]
fn chatbase_v2_documented_export_page_normalizes_exactly() {
    let (result, request) = list_fixture(&query(1, 2), "documented_page.json");
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, PATH);
    assert_eq!(
        pairs(&request),
        [("limit", "2")],
        "only what the window needs"
    );
    let result = result.unwrap();
    assert_eq!(
        json_list(&result),
        json!([
            {
                "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
                "chatbot_id": "support",
                "provider": "chatbase_v2",
                "created_at": "2024-06-14T15:45:34Z",
                "updated_at": "2024-06-14T15:46:52.250Z",
                "customer": "user_8431",
                "source": "whatsapp",
                "messages": [
                    {"role": "user", "content": "Where is my order #1042?", "created_at": "2024-06-14T15:45:34Z"},
                    {"role": "assistant", "content": "Let me look that up.\n\nOrder #1042 shipped with DHL yesterday.", "created_at": "2024-06-14T15:45:41Z"},
                    {"role": "assistant", "content": "", "created_at": "2024-06-14T15:46:52.250Z"}
                ]
            },
            {
                "id": "5QHA6VB-conv-2",
                "chatbot_id": "support",
                "provider": "chatbase_v2",
                "created_at": "2024-06-13T17:33:20Z",
                "updated_at": "2024-06-13T17:34:20Z",
                "customer": null,
                "source": "widget",
                "messages": [
                    {"role": "user", "content": "I need a human.", "created_at": "2024-06-13T17:33:20Z"},
                    {"role": "assistant", "content": "Hi, this is Dana from support.", "created_at": "2024-06-13T17:34:20Z"}
                ]
            }
        ])
    );
    assert!(result.page.has_more, "hasMore: true");
    assert_eq!(
        result.resume,
        [ResumePoint {
            position: 2,
            cursor: Some(DOCUMENTED_CURSOR.to_owned()),
            skip: 0
        }],
        "page 2 starts at the vendor's cursor"
    );
}

#[test]
fn chatbase_v2_raw_keeps_tool_parts_title_and_status_byte_identical() {
    let mut q = query(1, 2);
    q.include_raw = true;
    let result = list_fixture(&q, "documented_page.json").0.unwrap();
    let text = fixture_text("chatbase_v2/documented_page.json");
    let items = array_items(value_after_key(&text, "data"));
    assert_eq!(result.page.conversations.len(), items.len());
    for (c, item) in result.page.conversations.iter().zip(items) {
        assert_eq!(c.raw.as_ref().unwrap().get(), item);
    }
    let raw: Value =
        serde_json::from_str(result.page.conversations[0].raw.as_ref().unwrap().get()).unwrap();
    assert_eq!(raw["messages"][1]["parts"][1]["type"], "tool-call");
    assert_eq!(raw["messages"][1]["parts"][2]["output"]["carrier"], "DHL");
    assert_eq!(raw["title"], "Where is my order?");
    let second: Value =
        serde_json::from_str(result.page.conversations[1].raw.as_ref().unwrap().get()).unwrap();
    assert_eq!(second["status"], "taken_over");
}

#[test]
fn chatbase_v2_every_export_source_label_becomes_its_canonical_source() {
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 30), None);
    let (result, requests) = drive(op.as_mut(), |r| {
        match r.query.iter().find(|(k, _)| *k == "cursor") {
            None => ok(fixture("chatbase_v2/every_source_page_1.json")),
            Some(_) => ok(fixture("chatbase_v2/every_source_page_2.json")),
        }
    });
    assert_eq!(pairs(&requests[0]), [("limit", "20")]);
    assert_eq!(
        pairs(&requests[1]),
        [("limit", "10"), ("cursor", "c3JjLTE5")]
    );
    let sources: Vec<Value> = json_list(&result.unwrap())
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].clone())
        .collect();
    assert_eq!(
        sources,
        [
            "api",
            "whatsapp",
            "messenger",
            "instagram",
            "slack",
            "salesforce",
            "zendesk",
            "zendesk",
            "website",
            "playground",
            "action_preview",
            "unspecified",
            "widget",
            "unspecified",
            "unspecified",
            "widget",
            "email",
            "unspecified",
            "phone",
            "android_sdk",
            "ios_sdk",
            "unspecified",
            "unspecified"
        ]
    );
}

#[test]
fn chatbase_v2_dates_and_sources_are_sent_natively() {
    let mut q = query(1, 10);
    q.dates = dates(Some("2024-03-01"), Some("2024-05-31"));
    q.sources = sources(&[Source::Whatsapp, Source::Zendesk, Source::Widget]);
    let (_, request) = list_fixture(&q, "empty_page.json");
    assert_eq!(
        pairs(&request),
        [
            ("limit", "10"),
            ("startDate", "2024-03-01"),
            ("endDate", "2024-05-31"),
            (
                "source",
                "Widget or Iframe,Iframe,WhatsApp,Zendesk,Zendesk Messaging"
            ),
        ]
    );
}

#[test]
fn chatbase_v2_a_filter_with_unspecified_is_applied_by_the_gateway_on_whole_pages() {
    let mut q = query(1, 5);
    q.sources = sources(&[Source::Api, Source::Unspecified]);
    let (result, request) = list_fixture(&q, "every_source_page_2.json");
    assert_eq!(
        pairs(&request),
        [("limit", "20")],
        "no `source`, a whole page"
    );
    // `iOS SDK` is left out; `Unspecified` and the null source are kept.
    assert_eq!(ids(&result.unwrap()), ["src-21", "src-22"]);
}

#[test]
fn chatbase_v2_agent_id_is_one_percent_encoded_path_segment() {
    let a = v2(50);
    let mut op = a.list(target("a/b?c"), &query(1, 1), None);
    let (_, request) = one_call(op.as_mut(), ok(fixture("chatbase_v2/empty_page.json")));
    assert_eq!(request.path, "/agents/a%2Fb%3Fc/conversations/export");
}

#[test]
fn chatbase_v2_empty_export_is_an_empty_last_page() {
    let result = list_fixture(&query(1, 10), "empty_page.json").0.unwrap();
    assert!(result.page.conversations.is_empty());
    assert!(!result.page.has_more);
    assert!(result.resume.is_empty());
}

#[test]
fn chatbase_v2_invalid_bodies_are_refused_not_guessed() {
    for (name, what) in [
        ("invalid_created_at_string.json", "expected a JSON number"),
        (
            "invalid_has_more_without_cursor.json",
            "hasMore is true but there is no cursor",
        ),
        (
            "invalid_text_part_without_text.json",
            "a `text` part without a string `text`",
        ),
    ] {
        let err = list_fixture(&query(1, 10), name).0.unwrap_err();
        let reason = invalid_body_reason(&err, 200);
        assert!(reason.contains(what), "{name}: {reason}");
    }
    // More conversations than `limit` asked for.
    let err = list_fixture(&query(1, 1), "documented_page.json")
        .0
        .unwrap_err();
    assert_eq!(
        invalid_body_reason(&err, 200),
        "asked for 1 conversations, got 2"
    );
    // A runaway cursor.
    let body = json!({"data": [], "pagination": {"cursor": "c".repeat(2049), "hasMore": true, "total": 1}});
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 1), None);
    let err = one_call(op.as_mut(), ok(body.to_string())).0.unwrap_err();
    assert!(invalid_body_reason(&err, 200).contains("2049 bytes"));
}

#[test]
fn chatbase_v2_has_more_false_ends_the_stream_whatever_the_cursor() {
    let body = json!({"data": [], "pagination": {"cursor": "stray", "hasMore": false, "total": 0}});
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 3), None);
    let result = one_call(op.as_mut(), ok(body.to_string())).0.unwrap();
    assert!(!result.page.has_more);
}

#[test]
fn chatbase_v2_messages_are_oldest_first_whatever_the_export_order() {
    let body = json!({"data": [{"id": "c1", "title": null, "createdAt": 100, "updatedAt": 300,
        "userId": null, "source": "API", "status": "ended", "messages": [
            {"id": "m3", "role": "assistant", "parts": [{"type": "text", "text": "third"}], "createdAt": 300},
            {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "first"}], "createdAt": 100},
            {"id": "m2", "role": "user", "parts": [{"type": "text", "text": "second"}], "createdAt": 100}
        ]}], "pagination": {"cursor": null, "hasMore": false, "total": 1}});
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 3), None);
    let result = one_call(op.as_mut(), ok(body.to_string())).0.unwrap();
    let texts: Vec<&str> = result.page.conversations[0]
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(texts, ["first", "second", "third"]);
}

// ---------------------------------------------------------------------------
// The error envelope
// ---------------------------------------------------------------------------

#[test]
fn chatbase_v2_error_codes_decide_the_kind() {
    let f = |name: &str| fixture_text(&format!("chatbase_v2/{name}"));
    assert_eq!(
        error_of(400, &f("error_400.json"), None),
        ProviderError::Rejected {
            status: 400,
            message: "Invalid request (VALIDATION_INVALID_BODY): message: Required".into()
        }
    );
    assert_eq!(
        error_of(400, &f("error_400_date_range.json"), None),
        ProviderError::Rejected {
            status: 400,
            message: "startDate must not be after endDate (VALIDATION_INVALID_DATE_RANGE)".into()
        }
    );
    assert_eq!(
        error_of(401, &f("error_401.json"), None),
        ProviderError::Unauthorized {
            status: 401,
            message: "Authentication required (AUTH_MISSING_API_KEY)".into()
        }
    );
    assert_eq!(
        error_of(403, &f("error_403.json"), None),
        ProviderError::Unauthorized {
            status: 403,
            message: "A Standard plan or higher is required to access the API \
                      (SUBSCRIPTION_API_RESTRICTED_PLAN)"
                .into()
        }
    );
    for name in ["error_404.json", "error_404_agent.json"] {
        assert!(
            matches!(
                error_of(404, &f(name), None),
                ProviderError::NotFound { .. }
            ),
            "{name}"
        );
    }
    assert_eq!(
        error_of(404, &f("error_404_agent.json"), None),
        ProviderError::NotFound {
            message: "Agent not found (AGENT_NOT_FOUND)".into()
        }
    );
    let e = error_of(500, &f("error_500.json"), None);
    assert!(matches!(e, ProviderError::Upstream { status: 500, .. }));
    assert!(!e.is_retryable());
    let e = error_of(503, &f("error_503.json"), None);
    assert!(matches!(e, ProviderError::Upstream { status: 503, .. }));
    assert!(e.is_retryable(), "maintenance is transient");
}

#[test]
fn chatbase_v2_rate_limit_honours_retry_after_else_the_ten_second_window() {
    let body = fixture_text("chatbase_v2/error_429.json");
    assert_eq!(
        error_of(429, &body, Some("7")),
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(
        error_of(429, &body, None),
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(10))
        }
    );
    assert_eq!(
        error_of(429, r#"{"message":"slow down"}"#, None),
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(10))
        },
        "a 429 outside the envelope too"
    );
}

#[test]
fn chatbase_v2_a_code_outranks_a_status_that_disagrees() {
    let f = |name: &str| fixture_text(&format!("chatbase_v2/{name}"));
    assert!(matches!(
        error_of(500, &f("error_401.json"), None),
        ProviderError::Unauthorized { status: 500, .. }
    ));
    let e = error_of(500, &f("error_503.json"), None);
    assert!(matches!(e, ProviderError::Upstream { status: 503, .. }) && e.is_retryable());
    assert!(matches!(
        error_of(200, &f("error_429.json"), None),
        ProviderError::RateLimited { .. }
    ));
    assert!(matches!(
        error_of(200, &f("error_404.json"), None),
        ProviderError::NotFound { .. }
    ));
    // An unknown code: the status decides, the code is quoted.
    assert_eq!(
        error_of(
            418,
            r#"{"error":{"code":"TEAPOT","message":"short and stout"}}"#,
            None
        ),
        ProviderError::Rejected {
            status: 418,
            message: "short and stout (TEAPOT)".into()
        }
    );
    let e = error_of(200, r#"{"error":{"code":"TEAPOT","message":"?"}}"#, None);
    assert!(invalid_body_reason(&e, 200).contains("TEAPOT"));
    // Not the envelope at all.
    let e = error_of(502, "<html>bad gateway</html>", None);
    assert!(matches!(e, ProviderError::Upstream { status: 502, .. }) && e.is_retryable());
}

// ---------------------------------------------------------------------------
// One conversation
// ---------------------------------------------------------------------------

fn get_with(
    id: &str,
    include_raw: bool,
    response: UpstreamResponse,
) -> (Result<Conversation, ProviderError>, UpstreamRequest) {
    let a = v2(50);
    let mut op = a.get(target(AGENT), id, include_raw).unwrap();
    one_call(op.as_mut(), response)
}

#[test]
fn chatbase_v2_one_conversation_of_any_source_is_one_export_call() {
    let body = fixture_text("chatbase_v2/documented_page.json");
    let (c, request) = get_with("5QHA6VB-conv-2", true, ok(body.clone()));
    assert_eq!(request.path, PATH);
    assert_eq!(pairs(&request), [("conversationId", "5QHA6VB-conv-2")]);
    let c = c.unwrap();
    assert_eq!(c.source, Source::Widget);
    let listed = list_fixture(&query(1, 2), "documented_page.json")
        .0
        .unwrap();
    let mut expected = json_of(&listed.page.conversations[1]);
    let items = array_items(value_after_key(&body, "data"));
    expected["raw"] = serde_json::from_str(items[1]).unwrap();
    assert_eq!(json_of(&c), expected);
    assert_eq!(c.raw.as_ref().unwrap().get(), items[1]);
}

#[test]
fn chatbase_v2_one_conversation_missing_is_not_found() {
    let (e, _) = get_with("nope", false, ok(fixture("chatbase_v2/empty_page.json")));
    assert!(matches!(e.unwrap_err(), ProviderError::NotFound { .. }));
    let (e, _) = get_with(
        "nope",
        false,
        answer(404, fixture("chatbase_v2/error_404.json")),
    );
    assert!(matches!(e.unwrap_err(), ProviderError::NotFound { .. }));
}

#[test]
fn chatbase_v2_an_export_ignoring_conversation_id_proves_nothing() {
    let (e, _) = get_with(
        "elsewhere",
        false,
        ok(fixture("chatbase_v2/documented_page.json")),
    );
    let reason = invalid_body_reason(&e.unwrap_err(), 200);
    assert!(reason.contains("other conversations"), "{reason}");
}

// ---------------------------------------------------------------------------
// Windows over cursor pages
// ---------------------------------------------------------------------------

/// One conversation of the vendor's stream.
#[derive(Clone)]
struct Item {
    id: String,
    at: DateTime<Utc>,
    source: Option<&'static str>,
    json: String,
}

const LABELS: [Option<&str>; 8] = [
    Some("API"),
    Some("WhatsApp"),
    None,
    Some("Widget or Iframe"),
    Some("Agent page"),
    Some("Iframe"),
    Some("Unspecified"),
    Some("Email"),
];

fn item(id: &str, secs: i64, source: Option<&'static str>) -> Item {
    let label = source.map_or(Value::Null, Value::from);
    Item {
        id: id.to_owned(),
        at: DateTime::from_timestamp(secs, 0).unwrap(),
        source,
        json: json!({
            "id": id, "title": null, "createdAt": secs, "updatedAt": secs,
            "userId": format!("user-{id}"), "source": label, "status": "ended",
            "messages": [{"id": format!("m-{id}"), "role": "user",
                          "parts": [{"type": "text", "text": format!("hello {id}")}],
                          "createdAt": secs}]
        })
        .to_string(),
    }
}

/// `n` conversations, newest first, 7 h apart (so days are crossed), every sixth
/// sharing the previous one's second, their sources cycling through [`LABELS`].
fn stream(n: usize) -> Vec<Item> {
    let base = t("2024-06-30T23:00:00Z").timestamp();
    let mut items: Vec<Item> = Vec::with_capacity(n);
    for i in 0..n {
        let mut secs = base - 7 * 3600 * i as i64;
        if i % 6 == 5 {
            secs = items[i - 1].at.timestamp();
        }
        items.push(item(
            &format!("conv-{i:04}"),
            secs,
            LABELS[i % LABELS.len()],
        ));
    }
    items
}

/// One call the vendor received.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    cursor: Option<String>,
    limit: usize,
    served: usize,
}

/// An in-test Chatbase v2 export endpoint over `items` (newest first).
struct Vendor {
    items: Vec<Item>,
    calls: Vec<Call>,
    /// Ignore `startDate`/`endDate`, as an older revision of the API would.
    ignore_dates: bool,
}

impl Vendor {
    fn new(items: Vec<Item>) -> Self {
        Self {
            items,
            calls: Vec::new(),
            ignore_dates: false,
        }
    }

    fn refuse(message: &str) -> UpstreamResponse {
        answer(
            400,
            json!({"error": {"code": "VALIDATION_INVALID_BODY", "message": message}}).to_string(),
        )
    }

    fn answer(&mut self, request: &UpstreamRequest) -> UpstreamResponse {
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.path, PATH);
        assert_eq!(request.json_body, None);
        let q = pairs(request);
        let get = |k: &str| q.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        for (k, _) in &q {
            assert!(
                ["limit", "cursor", "startDate", "endDate", "source"].contains(k),
                "undocumented parameter {k}"
            );
        }
        let limit: usize = get("limit").unwrap().parse().unwrap();
        assert!(
            (1..=20).contains(&limit),
            "limit {limit}: the export takes 1–20"
        );
        let day = |k: &str| get(k).map(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").unwrap());
        let (start, end) = if self.ignore_dates {
            (None, None)
        } else {
            (day("startDate"), day("endDate"))
        };
        let labels: Option<Vec<&str>> = get("source").map(|s| s.split(',').collect());
        let stream: Vec<&Item> = self
            .items
            .iter()
            .filter(|i| start.is_none_or(|s| i.at.date_naive() >= s))
            .filter(|i| end.is_none_or(|e| i.at.date_naive() <= e))
            .filter(|i| {
                labels
                    .as_ref()
                    .is_none_or(|l| i.source.is_some_and(|s| l.contains(&s)))
            })
            .collect();
        let cursor = get("cursor").map(str::to_owned);
        self.calls.push(Call {
            cursor: cursor.clone(),
            limit,
            served: 0,
        });
        let from = match &cursor {
            None => 0,
            Some(c) => match c
                .strip_prefix("after:")
                .and_then(|id| stream.iter().position(|i| i.id == id))
            {
                Some(at) => at + 1,
                None => return Self::refuse("Invalid cursor"),
            },
        };
        let page = &stream[from.min(stream.len())..(from + limit).min(stream.len())];
        let has_more = from + limit < stream.len();
        if let Some(call) = self.calls.last_mut() {
            call.served = page.len();
        }
        let next = match (has_more, page.last()) {
            (true, Some(last)) => Value::from(format!("after:{}", last.id)),
            _ => Value::Null,
        };
        let data: Vec<&str> = page.iter().map(|i| i.json.as_str()).collect();
        ok(format!(
            r#"{{"data":[{}],"pagination":{{"cursor":{next},"hasMore":{has_more},"total":{}}}}}"#,
            data.join(","),
            stream.len()
        ))
    }
}

/// What the gateway remembers between requests for one stream.
#[derive(Default)]
struct Memory(BTreeMap<u64, ResumePoint>);

impl Memory {
    fn nearest(&self, window_start: u64) -> Option<&ResumePoint> {
        self.0.range(..=window_start).next_back().map(|(_, p)| p)
    }

    fn keep(&mut self, result: &ListResult) {
        for p in &result.resume {
            self.0.insert(p.position, p.clone());
        }
    }
}

fn run(
    vendor: &mut Vendor,
    q: &ListQuery,
    from: Option<&ResumePoint>,
    max_scan_pages: u32,
) -> Result<ListResult, ProviderError> {
    let a = v2(max_scan_pages);
    let mut op = a.list_from(target(AGENT), q, None, from);
    drive(op.as_mut(), |r| vendor.answer(r)).0
}

/// Reads a page the way the gateway does: from the nearest remembered point,
/// remembering what the page reached.
fn read(
    vendor: &mut Vendor,
    memory: &mut Memory,
    q: &ListQuery,
) -> Result<ListResult, ProviderError> {
    let from = memory.nearest(q.window_start()).cloned();
    let result = run(vendor, q, from.as_ref(), 50)?;
    memory.keep(&result);
    Ok(result)
}

fn item_ids(items: &[&Item]) -> Vec<String> {
    items.iter().map(|i| i.id.clone()).collect()
}

fn all(items: &[Item]) -> Vec<&Item> {
    items.iter().collect()
}

/// The vendor calls a walk from the first page needs for a window ending at
/// `end` over `n` conversations: pages of 20 up to the window's end, at least one.
fn cold_calls(n: usize, end: usize) -> usize {
    n.min(end).div_ceil(20).max(1)
}

#[test]
fn chatbase_v2_window_is_the_exact_slice_for_every_size_and_page_from_the_first_page() {
    let mut cases = 0;
    for n in [0, 1, 19, 20, 21, 40, 57, 137] {
        let items = stream(n);
        for size in [1, 2, 3, 7, 10, 19, 20, 21, 39, 40, 50, 99, 100] {
            for page in 1..=n.div_ceil(size) + 1 {
                let mut vendor = Vendor::new(items.clone());
                let q = query(page as u32, size as u32);
                let result = run(&mut vendor, &q, None, 50).unwrap();
                let (from, to) = (((page - 1) * size).min(n), (page * size).min(n));
                let what = format!("n={n} size={size} page={page}");
                assert_eq!(ids(&result), item_ids(&all(&items)[from..to]), "{what}");
                assert_eq!(result.page.has_more, page * size < n, "{what}");
                assert_eq!(vendor.calls.len(), cold_calls(n, page * size), "{what}");
                assert!(
                    vendor.calls.iter().map(|c| c.served).sum::<usize>() <= page * size,
                    "{what}: read past the window"
                );
                cases += 1;
            }
        }
    }
    assert!(cases > 500, "{cases}");
}

#[test]
fn chatbase_v2_pages_read_in_order_cost_one_call_per_vendor_page() {
    for n in [0, 1, 20, 57, 137, 400] {
        let items = stream(n);
        for size in [1usize, 5, 10, 19, 20, 21, 30, 60, 100] {
            let mut vendor = Vendor::new(items.clone());
            let mut memory = Memory::default();
            let mut seen = Vec::new();
            let mut page = 1;
            loop {
                let q = query(page, size as u32);
                let result = read(&mut vendor, &mut memory, &q).unwrap();
                seen.extend(ids(&result));
                if !result.page.has_more {
                    break;
                }
                page += 1;
            }
            let what = format!("n={n} size={size}");
            assert_eq!(seen, item_ids(&all(&items)), "{what}");
            // Every conversation served once: no cursor walked twice, no re-walk.
            let served: usize = vendor.calls.iter().map(|c| c.served).sum();
            assert_eq!(served, n, "{what}");
            let pages = n.div_ceil(size).max(1);
            let per_page = size.div_ceil(20);
            let last = (n - (pages - 1) * size).div_ceil(20).max(1);
            assert_eq!(vendor.calls.len(), (pages - 1) * per_page + last, "{what}");
            let cursors: BTreeSet<_> = vendor.calls.iter().map(|c| c.cursor.clone()).collect();
            assert_eq!(
                cursors.len(),
                vendor.calls.len(),
                "{what}: a cursor asked twice"
            );
        }
    }
}

#[test]
fn chatbase_v2_a_point_serves_every_size_of_its_stream() {
    let items = stream(137);
    let mut vendor = Vendor::new(items.clone());
    let mut memory = Memory::default();
    read(&mut vendor, &mut memory, &query(1, 10)).unwrap();
    vendor.calls.clear();
    // Position 10 is page 3 of size 5 and page 2 of size 10.
    let result = read(&mut vendor, &mut memory, &query(3, 5)).unwrap();
    assert_eq!(ids(&result), item_ids(&all(&items)[10..15]));
    assert_eq!(vendor.calls.len(), 1);
    // Position 15, where that read of 5 ended, serves a window of 15.
    vendor.calls.clear();
    let result = read(&mut vendor, &mut memory, &query(2, 15)).unwrap();
    assert_eq!(ids(&result), item_ids(&all(&items)[15..30]));
    assert_eq!(vendor.calls.len(), 1);
    assert_eq!(vendor.calls[0].limit, 15);
}

#[test]
fn chatbase_v2_a_point_inside_a_vendor_page_skips_to_it() {
    let items = stream(137);
    let mut vendor = Vendor::new(items.clone());
    // Found by the gateway filtering `unspecified` itself: whole pages of 20.
    let mut q = query(1, 3);
    q.sources = sources(&[Source::Api, Source::Unspecified]);
    let kept: Vec<&Item> = items
        .iter()
        .filter(|i| matches!(i.source, Some("API" | "Unspecified" | "Agent page") | None))
        .collect();
    let mut memory = Memory::default();
    let first = read(&mut vendor, &mut memory, &q).unwrap();
    assert_eq!(ids(&first), item_ids(&kept[..3]));
    let end = first.resume.last().unwrap().clone();
    assert_eq!(end.position, 3);
    assert_eq!(end.cursor, None, "still on the first vendor page");
    assert!(end.skip > 0);
    vendor.calls.clear();
    q.page = PageNumber::new(2).unwrap();
    let second = read(&mut vendor, &mut memory, &q).unwrap();
    assert_eq!(ids(&second), item_ids(&kept[3..6]));
    assert_eq!(vendor.calls.len(), 1, "the same vendor page, skipped into");
}

#[test]
fn chatbase_v2_gateway_filtered_windows_are_exact_slices_in_order_and_cold() {
    let items = stream(137);
    for filter in [
        vec![Source::Unspecified],
        vec![Source::Api, Source::Unspecified],
        vec![Source::Widget, Source::Email, Source::Unspecified],
    ] {
        let keep = |i: &&Item| filter.contains(&Source::from_vendor(i.source));
        let kept: Vec<&Item> = items.iter().filter(keep).collect();
        for size in [1, 4, 10, 25, 100] {
            let mut q = query(1, size as u32);
            q.sources = Some(filter.iter().copied().collect());
            let mut vendor = Vendor::new(items.clone());
            let mut memory = Memory::default();
            let mut page = 1;
            loop {
                q.page = PageNumber::new(page as u32).unwrap();
                let what = format!("{filter:?} size={size} page={page}");
                let (from, to) = (
                    ((page - 1) * size).min(kept.len()),
                    (page * size).min(kept.len()),
                );
                let in_order = read(&mut vendor, &mut memory, &q).unwrap();
                assert_eq!(ids(&in_order), item_ids(&kept[from..to]), "{what}");
                let cold = run(&mut Vendor::new(items.clone()), &q, None, 50).unwrap();
                assert_eq!(ids(&cold), ids(&in_order), "{what}");
                assert_eq!(cold.page.has_more, in_order.page.has_more, "{what}");
                if !in_order.page.has_more {
                    assert!(to == kept.len(), "{what}: the last page ends the stream");
                    break;
                }
                page += 1;
            }
            // In order, a window costs the vendor pages it spans: the one the
            // previous window ended in (read again, skipped into) and the next.
            assert!(
                vendor.calls.len() <= page + items.len().div_ceil(20),
                "{filter:?} size={size}: {} calls for {page} pages",
                vendor.calls.len()
            );
        }
    }
}

#[test]
fn chatbase_v2_date_and_native_source_windows_are_exact_slices() {
    let items = stream(137);
    let ranges = [
        (Some("2024-06-01"), Some("2024-06-20")),
        (None, Some("2024-06-15")),
        (Some("2024-06-25"), None),
        (Some("2024-06-10"), Some("2024-06-10")),
    ];
    for (start, end) in ranges {
        for filter in [None, Some(vec![Source::Widget, Source::Whatsapp])] {
            let mut q = query(1, 1);
            q.dates = dates(start, end);
            q.sources = filter.as_ref().map(|f| f.iter().copied().collect());
            let kept: Vec<&Item> = items
                .iter()
                .filter(|i| {
                    let day = i.at.date_naive();
                    start.is_none_or(|s| day >= d(s)) && end.is_none_or(|e| day <= d(e))
                })
                .filter(|i| q.accepts_source(Source::from_vendor(i.source)))
                .collect();
            for size in [1, 3, 20, 100] {
                for page in 1..=kept.len().div_ceil(size) + 1 {
                    q.page = PageNumber::new(page as u32).unwrap();
                    q.size = PageSize::new(size as u32).unwrap();
                    let what = format!("{start:?}..{end:?} {filter:?} size={size} page={page}");
                    let (from, to) = (
                        ((page - 1) * size).min(kept.len()),
                        (page * size).min(kept.len()),
                    );
                    let mut vendor = Vendor::new(items.clone());
                    let result = run(&mut vendor, &q, None, 50).unwrap();
                    assert_eq!(ids(&result), item_ids(&kept[from..to]), "{what}");
                    assert_eq!(result.page.has_more, page * size < kept.len(), "{what}");
                    // The vendor filtered: the walk is as short as unfiltered.
                    assert_eq!(
                        vendor.calls.len(),
                        cold_calls(kept.len(), page * size),
                        "{what}"
                    );
                    // A vendor ignoring the dates costs calls, never a wrong page.
                    let mut ignoring = Vendor::new(items.clone());
                    ignoring.ignore_dates = true;
                    let result = run(&mut ignoring, &q, None, 50).unwrap();
                    assert_eq!(
                        ids(&result),
                        item_ids(&kept[from..to]),
                        "{what}, ignored dates"
                    );
                }
            }
        }
    }
}

#[test]
fn chatbase_v2_deep_first_request_walks_within_the_scan_bound() {
    let items = stream(400);
    let mut vendor = Vendor::new(items.clone());
    let result = run(&mut vendor, &query(19, 20), None, 50).unwrap();
    assert_eq!(ids(&result), item_ids(&all(&items)[360..380]));
    assert_eq!(vendor.calls.len(), 19);
    let mut vendor = Vendor::new(items.clone());
    let err = run(&mut vendor, &query(19, 20), None, 18).unwrap_err();
    assert_eq!(err, ProviderError::ScanLimit { pages: 18 });
    assert_eq!(
        vendor.calls.len(),
        18,
        "never a partial page, never past the bound"
    );
}

#[test]
fn chatbase_v2_conversation_arriving_between_two_page_reads() {
    let items = stream(57);
    let mut vendor = Vendor::new(items.clone());
    let mut memory = Memory::default();
    let first = read(&mut vendor, &mut memory, &query(1, 10)).unwrap();
    assert_eq!(ids(&first), item_ids(&all(&items)[..10]));

    let newest = item(
        "conv-new",
        t("2024-07-01T08:00:00Z").timestamp(),
        Some("API"),
    );
    vendor.items.insert(0, newest.clone());
    let snapshot = vendor.items.clone();

    // With the remembered cursor, page 2 continues exactly where page 1 ended:
    // no conversation twice, none skipped, one call.
    vendor.calls.clear();
    let second = read(&mut vendor, &mut memory, &query(2, 10)).unwrap();
    assert_eq!(ids(&second), item_ids(&all(&items)[10..20]));
    assert_eq!(vendor.calls.len(), 1);

    // Without it (another gateway, or a forgotten point), page 2 is the plain
    // slice of the vendor's data as it is now, like Chatbase v1's page 2.
    let now = all(&snapshot);
    let cold = run(&mut Vendor::new(snapshot.clone()), &query(2, 10), None, 50).unwrap();
    assert_eq!(ids(&cold), item_ids(&now[10..20]));
    assert_eq!(ids(&cold)[0], items[9].id, "page 1's last, again");

    // The newcomer is on page 1.
    let again = run(&mut vendor, &query(1, 10), None, 50).unwrap();
    assert_eq!(ids(&again)[0], newest.id);
}

#[test]
fn chatbase_v2_conversation_arriving_mid_window_is_not_read_twice() {
    // A window of 30 needs two vendor calls; a conversation arrives between them.
    let items = stream(57);
    let mut vendor = Vendor::new(items.clone());
    let mut arrived = false;
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 30), None);
    let (result, _) = drive(op.as_mut(), |r| {
        let answer = vendor.answer(r);
        if !arrived {
            arrived = true;
            let newest = item("conv-new", t("2024-07-01T08:00:00Z").timestamp(), None);
            vendor.items.insert(0, newest);
        }
        answer
    });
    // The keyset cursor carries on after the 20th: the window is the stream as
    // the first call saw it.
    assert_eq!(ids(&result.unwrap()), item_ids(&all(&items)[..30]));
}

#[test]
fn chatbase_v2_a_refused_remembered_cursor_walks_again_from_the_first_page() {
    let items = stream(57);
    let mut vendor = Vendor::new(items.clone());
    let stale = ResumePoint {
        position: 20,
        cursor: Some("after:expired".to_owned()),
        skip: 0,
    };
    let result = run(&mut vendor, &query(3, 10), Some(&stale), 50).unwrap();
    assert_eq!(ids(&result), item_ids(&all(&items)[20..30]));
    let cursors: Vec<Option<&str>> = vendor.calls.iter().map(|c| c.cursor.as_deref()).collect();
    assert_eq!(
        cursors,
        [Some("after:expired"), None, Some("after:conv-0019")],
        "the refusal, then a walk from the first page"
    );
    // Without a remembered point a refusal is the vendor's answer.
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 1), None);
    let err = one_call(
        op.as_mut(),
        answer(400, fixture("chatbase_v2/error_400.json")),
    )
    .0
    .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { status: 400, .. }));
}

#[test]
fn chatbase_v2_a_point_whose_page_shrank_walks_again() {
    let items = stream(57);
    let mut vendor = Vendor::new(items.clone());
    // The point says 5 conversations of the page after conv-0054 come first,
    // but only 2 are left there now.
    let point = ResumePoint {
        position: 60,
        cursor: Some("after:conv-0054".to_owned()),
        skip: 5,
    };
    let result = run(&mut vendor, &query(7, 10), Some(&point), 50).unwrap();
    assert!(result.page.conversations.is_empty());
    assert!(!result.page.has_more);
    assert_eq!(
        vendor.calls[1].cursor, None,
        "walked again from the first page"
    );
}

#[test]
fn chatbase_v2_a_point_after_the_window_is_not_used() {
    let items = stream(57);
    let mut vendor = Vendor::new(items.clone());
    let later = ResumePoint {
        position: 40,
        cursor: Some("after:conv-0039".to_owned()),
        skip: 0,
    };
    let result = run(&mut vendor, &query(2, 10), Some(&later), 50).unwrap();
    assert_eq!(ids(&result), item_ids(&all(&items)[10..20]));
    assert_eq!(vendor.calls[0].cursor, None);
}

#[test]
fn chatbase_v2_a_cursor_that_comes_back_is_an_invalid_body_not_a_loop() {
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(1, 100), None);
    let page = json!({"data": [], "pagination": {"cursor": "same", "hasMore": true, "total": 9}});
    let (result, requests) = drive(op.as_mut(), |_| ok(page.to_string()));
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("cursors loop"), "{reason}");
    assert_eq!(requests.len(), 2);
}

#[test]
fn chatbase_v2_endless_empty_pages_stop_at_the_scan_bound() {
    let a = v2(7);
    let mut op = a.list(target(AGENT), &query(1, 10), None);
    let mut n = 0;
    let (result, requests) = drive(op.as_mut(), |_| {
        n += 1;
        ok(json!({"data": [], "pagination": {"cursor": format!("c{n}"), "hasMore": true, "total": 0}}).to_string())
    });
    assert_eq!(result.unwrap_err(), ProviderError::ScanLimit { pages: 7 });
    assert_eq!(requests.len(), 7);
}

#[test]
fn chatbase_v2_a_retried_answer_continues_the_same_walk() {
    // A retryable failure leaves the operation as it was: the same request
    // answered again carries on.
    let items = stream(57);
    let mut vendor = Vendor::new(items.clone());
    let a = v2(50);
    let mut op = a.list(target(AGENT), &query(2, 20), None);
    let Step::Send(first) = op.start().unwrap() else {
        panic!("asks the vendor")
    };
    let Step::Send(second) = op.on_response(vendor.answer(&first)).unwrap() else {
        panic!("needs a second page")
    };
    let e = op
        .on_response(answer(503, fixture("chatbase_v2/error_503.json")))
        .unwrap_err();
    assert!(e.is_retryable());
    let Step::Done(result) = op.on_response(vendor.answer(&second)).unwrap() else {
        panic!("the window is complete")
    };
    assert_eq!(ids(&result), item_ids(&all(&items)[20..40]));
}
