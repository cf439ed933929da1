//! Hostile vendors against every adapter (issue 9): arbitrary statuses and
//! `Retry-After` values, the documented fixtures mutated (extreme numbers,
//! control and bidi characters, missing and extra fields, wrong types, emptied
//! and duplicated arrays, deep nesting, truncation) and plain arbitrary bytes,
//! answered to list and get operations of every shape.
//!
//! Whatever the vendor sends, an operation must end within [`MAX_STEPS`] calls
//! without panicking, as either a `ProviderError` (whose sanitized text is
//! bounded and free of control characters) or a normalized result that
//! serializes, keeps its page bound, and prints every timestamp as
//! `YYYY-MM-DDTHH:MM:SS[.f+]Z`.
//!
//! `PROPTEST_CASES` sets the number of cases per property (default
//! [`DEFAULT_CASES`], sized for CI); no failure files are written.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use bytes::Bytes;
use chatgate_providers::{
    adapter, AdapterOptions, Conversation, DateRange, Dialect, ListQuery, Operation, PageNumber,
    PageSize, ProviderError, ProviderKind, Source, Step, UpstreamRequest, UpstreamResponse,
};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde_json::Value;

use common::{target, BOT};

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 512;
/// An operation still asking after this many calls is a failure: every
/// adapter bounds its vendor calls (the scan bound here is at most 100).
const MAX_STEPS: usize = 200;
/// The provider key errors are sanitized with.
const KEY: &str = "sk-live-0123456789abcdef";
/// Replaced, after serialization, by deeply nested arrays.
const DEEP_MARKER: &str = "@@deep-nesting@@";

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every kind in the registry with each of the dialects its descriptor lists,
/// and its fixture folder (named after the kind), so a new vendor is fuzzed with
/// its own fixtures as soon as it is registered.
fn subjects() -> Vec<(ProviderKind, Dialect, &'static str)> {
    let mut all = Vec::new();
    for kind in ProviderKind::ALL {
        let info = kind.info();
        if info.dialects.is_empty() {
            all.push((kind, info.default_dialect(), info.kind_name));
        }
        for &(_, dialect) in info.dialects {
            all.push((kind, dialect, info.kind_name));
        }
    }
    all
}

/// A vendor's documented answers: every fixture of its folder except the
/// gateway's own expected outputs, parsed when they are JSON.
struct Seed {
    name: String,
    bytes: Bytes,
    json: Option<Value>,
}

fn seeds(dir: &str) -> &'static [Seed] {
    static ALL: OnceLock<Vec<(String, Vec<Seed>)>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let mut all = Vec::new();
        for (_, _, dir) in subjects() {
            if all.iter().any(|(d, _): &(String, _)| d == dir) {
                continue;
            }
            let path = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json") && !n.ends_with(".normalized.json"))
                .collect();
            names.sort();
            let seeds = names
                .iter()
                .map(|n| {
                    let bytes = common::fixture(&format!("{dir}/{n}"));
                    let json = serde_json::from_slice(&bytes).ok();
                    Seed {
                        name: n.clone(),
                        bytes,
                        json,
                    }
                })
                .collect();
            all.push((dir.to_owned(), seeds));
        }
        all
    });
    let (_, seeds) = all.iter().find(|(d, _)| d == dir).unwrap();
    seeds
}

// ---- what a hostile vendor sends ----

/// One change to a JSON document, at the node `at` (modulo the node count).
#[derive(Debug, Clone)]
struct Mutation {
    at: usize,
    kind: MutationKind,
}

#[derive(Debug, Clone)]
enum MutationKind {
    /// Replace the node with a value (extreme numbers, hostile strings, wrong types).
    Replace(Value),
    /// Remove the node from its object or array.
    Remove,
    /// Add a field to the node (or its parent object).
    AddField(String, Value),
    /// Empty the array the node is, or is in.
    EmptyArray,
    /// Repeat every item of the array the node is, or is in.
    DuplicateArray,
    /// Replace the node with 10,000 nested `[`, closed or not.
    DeepNest { closed: bool },
}

#[derive(Debug, Clone)]
enum BodySpec {
    /// A fixture, mutated, then maybe cut short at a byte.
    Fixture {
        seed: usize,
        /// Pick among the fixtures that document an answer to the request made
        /// (so multi-call operations get deeper), not among all.
        plausible: bool,
        mutations: Vec<Mutation>,
        truncate_at: Option<usize>,
    },
    /// Anything at all.
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: BodySpec,
    /// Make `data.pages.current_page` the page asked for, so paged vendors go
    /// deeper than their first consistency check.
    follow_pages: bool,
    /// With `follow_pages`: claim this many pages in all.
    last_page: Option<u64>,
    received_at: DateTime<Utc>,
}

/// The vendor's behaviour over one operation: a pool of answers, which one
/// answers each call, and how often a retryable error is retried.
#[derive(Debug, Clone)]
struct Vendor {
    answers: Vec<Answer>,
    picks: Vec<usize>,
    retries: u8,
}

fn extreme_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(i64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(u64::from(u32::MAX))),
        Just(Value::from(u64::from(u32::MAX) + 1)),
        Just(Value::from(-1)),
        Just(Value::from(0)),
        Just(Value::from(1)),
        Just(Value::from(2)),
        Just(Value::from(1e308)),
        Just(Value::from(-0.0)),
        Just(Value::from(0.5)),
        any::<i64>().prop_map(Value::from),
        (0u64..1_000).prop_map(Value::from),
    ]
}

/// RFC 3339-looking timestamps, biased to the year and offset edges.
fn timestamp() -> impl Strategy<Value = String> {
    let year = prop_oneof![Just(0u32), Just(1), Just(9998), Just(9999), 0u32..=9999];
    let offset = prop_oneof![
        Just("Z".to_owned()),
        Just("+23:59".to_owned()),
        Just("-23:59".to_owned()),
        (any::<bool>(), 0u32..30, 0u32..70)
            .prop_map(|(plus, h, m)| format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' })),
    ];
    let frac = prop_oneof![
        Just(String::new()),
        "[0-9]{1,12}".prop_map(|d| format!(".{d}"))
    ];
    (
        year,
        0u32..14,
        0u32..33,
        0u32..26,
        0u32..62,
        0u32..62,
        frac,
        offset,
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}")
        })
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\u{1b}[31mred\u{1b}[0m".to_owned()),
        Just("nul\0byte".to_owned()),
        Just("\u{202e}evil\u{2066}isolate\u{2069}".to_owned()),
        Just("line\n2024-07-01T10:20:45Z  INFO forged\r\n".to_owned()),
        Just("🎉👩‍👩‍👧‍👦 émoji".to_owned()),
        Just("x".repeat(20_000)),
        Just(format!("{}{KEY}", "k".repeat(295))),
        Just(String::new()),
        Just("9999-12-31T23:59:59-23:59".to_owned()),
        Just("0000-01-01T00:00:00+23:59".to_owned()),
        Just("+10000-01-01T00:00:00Z".to_owned()),
        Just("2024-06-30T23:59:60Z".to_owned()),
        Just("2024-06-14T15:45:34+00:00".to_owned()),
        prop::sample::select(vec![
            "user",
            "bot",
            "assistant",
            "system",
            "agent",
            "USER",
            "API",
            "WhatsApp",
            "Chatbase site",
            "widget or iframe",
            "unspecified",
            "success",
            "error",
            "8977617953",
            "-1",
            "18446744073709551616",
            "webpage",
            "sources",
        ])
        .prop_map(str::to_owned),
        timestamp(),
        any::<String>(),
    ]
}

fn wrong_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Bool(true)),
        Just(Value::Array(Vec::new())),
        Just(serde_json::json!({})),
        Just(serde_json::json!([{}])),
        Just(serde_json::json!({"sources": [{"type": 1, "url": ["x"]}]})),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let field = prop::sample::select(vec![
        "id",
        "created_at",
        "updated_at",
        "messages",
        "data",
        "pages",
        "current_page",
        "last_page",
        "per_page",
        "status",
        "message",
        "role",
        "text",
        "content",
        "source",
        "customer",
        "contact_id",
        "sources",
        "extra",
        "__proto__",
    ])
    .prop_map(str::to_owned);
    let kind = prop_oneof![
        4 => extreme_number().prop_map(MutationKind::Replace),
        4 => hostile_string().prop_map(|s| MutationKind::Replace(Value::String(s))),
        2 => wrong_type().prop_map(MutationKind::Replace),
        2 => Just(MutationKind::Remove),
        2 => (field, prop_oneof![extreme_number(), wrong_type(), hostile_string().prop_map(Value::String)])
            .prop_map(|(k, v)| MutationKind::AddField(k, v)),
        1 => Just(MutationKind::EmptyArray),
        1 => Just(MutationKind::DuplicateArray),
        1 => any::<bool>().prop_map(|closed| MutationKind::DeepNest { closed }),
    ];
    (any::<usize>(), kind).prop_map(|(at, kind)| Mutation { at, kind })
}

fn body() -> impl Strategy<Value = BodySpec> {
    prop_oneof![
        8 => (
            any::<usize>(),
            any::<bool>(),
            prop_oneof![2 => Just(Vec::new()), 3 => vec(mutation(), 1..5)],
            prop::option::weighted(0.1, any::<usize>()),
        )
            .prop_map(|(seed, plausible, mutations, truncate_at)| BodySpec::Fixture {
                seed,
                plausible,
                mutations,
                truncate_at,
            }),
        1 => vec(any::<u8>(), 0..256).prop_map(BodySpec::Bytes),
    ]
}

fn http_date() -> impl Strategy<Value = String> {
    let year = prop_oneof![Just(9999u32), Just(1970), Just(2024), 0u32..100_000];
    (
        prop::sample::select(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
        0u32..33,
        prop::sample::select(vec![
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]),
        year,
        0u32..25,
        0u32..61,
        0u32..62,
        prop::sample::select(vec!["GMT", "UT", "+2359", "-2359", "EST", "Z"]),
    )
        .prop_map(|(wd, d, mo, y, h, mi, s, z)| {
            format!("{wd}, {d:02} {mo} {y} {h:02}:{mi:02}:{s:02} {z}")
        })
}

fn retry_after() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.7,
        prop_oneof![
            "[0-9]{1,40}",
            "-[0-9]{1,30}",
            Just("99999999999999999999999".to_owned()),
            Just("18446744073709551615".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("10000000000000000000".to_owned()),
            Just("9223372036854775807".to_owned()),
            Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
            Just("Thu, 01 Jan 1970 00:00:00 GMT".to_owned()),
            http_date(),
            any::<String>(),
        ],
    )
}

fn received_at() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        4 => Just(common::now()),
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
        1 => (-62_000_000_000i64..253_000_000_000, 0u32..2_000_000_000)
            .prop_map(|(s, n)| Utc.timestamp_opt(s, n).single().unwrap_or_else(common::now)),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        6 => Just(200u16),
        1 => prop::sample::select(vec![201u16, 204, 299, 401, 403, 404, 422, 429, 500, 502, 503]),
        2 => 100u16..=999,
    ];
    (status, retry_after(), body(), any::<bool>(), received_at()).prop_map(
        |(status, retry_after, body, follow_pages, received_at)| Answer {
            status,
            retry_after,
            body,
            follow_pages,
            last_page: None,
            received_at,
        },
    )
}

/// A documented answer to whatever was asked, following the pages, with at
/// most one hostile value in it: what keeps a multi-call operation going long
/// enough to reach its later pages, its re-plans and its scan bound.
fn steady_answer() -> impl Strategy<Value = Answer> {
    let light = prop_oneof![
        hostile_string().prop_map(|s| MutationKind::Replace(Value::String(s))),
        extreme_number().prop_map(MutationKind::Replace),
        Just(MutationKind::DuplicateArray),
    ];
    let last_page = prop_oneof![
        Just(None),
        Just(Some(1_000)),
        Just(Some(u64::from(u32::MAX))),
        Just(Some(u64::MAX)),
    ];
    (
        any::<usize>(),
        vec((any::<usize>(), light), 0..2),
        last_page,
    )
        .prop_map(|(seed, mutations, last_page)| Answer {
            status: 200,
            retry_after: None,
            body: BodySpec::Fixture {
                seed,
                plausible: true,
                mutations: mutations
                    .into_iter()
                    .map(|(at, kind)| Mutation { at, kind })
                    .collect(),
                truncate_at: None,
            },
            follow_pages: true,
            last_page,
            received_at: common::now(),
        })
}

/// Mostly a pool of hostile answers picked at random; sometimes a steady
/// answer that is picked most of the time, with the hostile ones in between.
fn vendor() -> impl Strategy<Value = Vendor> {
    let hostile = (vec(answer(), 1..6), vec(any::<usize>(), 1..16), 0u8..4).prop_map(
        |(answers, picks, retries)| Vendor {
            answers,
            picks,
            retries,
        },
    );
    let steady = (
        steady_answer(),
        vec(answer(), 0..3),
        vec(prop_oneof![6 => Just(0usize), 1 => any::<usize>()], 1..32),
        0u8..4,
    )
        .prop_map(|(steady, others, picks, retries)| {
            let mut answers = vec![steady];
            answers.extend(others);
            Vendor {
                answers,
                picks,
                retries,
            }
        });
    prop_oneof![2 => hostile, 1 => steady]
}

// ---- what the gateway asks ----

fn date() -> impl Strategy<Value = NaiveDate> {
    prop_oneof![
        (2023i32..2026, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap()),
        Just(NaiveDate::from_ymd_opt(0, 1, 1).unwrap()),
        Just(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()),
    ]
}

fn list_query() -> impl Strategy<Value = ListQuery> {
    let page = prop_oneof![4 => 1u32..=4, 1 => Just(PageNumber::MAX), 1 => 1..=PageNumber::MAX];
    let size = prop_oneof![Just(1u32), Just(10), Just(100), 1u32..=100];
    let dates = (prop::option::of(date()), prop::option::of(date())).prop_map(|(a, b)| {
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
            other => other,
        };
        DateRange::new(a, b).unwrap()
    });
    let sources =
        prop::option::weighted(0.3, prop::sample::subsequence(Source::ALL.to_vec(), 0..4))
            .prop_map(|s| s.map(|s| s.into_iter().collect::<BTreeSet<_>>()));
    (page, size, dates, sources, any::<bool>()).prop_map(
        |(page, size, dates, sources, include_raw)| ListQuery {
            sources,
            dates,
            page: PageNumber::new(page).unwrap(),
            size: PageSize::new(size).unwrap(),
            include_raw,
        },
    )
}

fn options() -> impl Strategy<Value = (u32, Option<NonZeroU32>)> {
    let scan = prop_oneof![
        Just(AdapterOptions::DEFAULT_MAX_SCAN_PAGES.get()),
        1u32..=100
    ];
    let per_page = prop::option::of(prop_oneof![
        1u32..=30,
        Just(u32::MAX),
        any::<u32>().prop_filter("non-zero", |n| *n > 0)
    ])
    .prop_map(|n| n.and_then(NonZeroU32::new));
    (scan, per_page)
}

// ---- driving and checking ----

fn materialize(answer: &Answer, seeds: &[Seed], request: &UpstreamRequest) -> UpstreamResponse {
    let body = match &answer.body {
        BodySpec::Bytes(b) => Bytes::from(b.clone()),
        BodySpec::Fixture {
            seed,
            plausible,
            mutations,
            truncate_at,
        } => {
            let documented: Vec<&Seed> = seeds
                .iter()
                .filter(|s| !plausible || answers(&s.name, &request.path))
                .collect();
            let seed = match documented.as_slice() {
                [] => &seeds[seed % seeds.len()],
                some => some[seed % some.len()],
            };
            let mut text = match &seed.json {
                Some(json) => {
                    let mut json = json.clone();
                    for m in mutations {
                        apply(&mut json, m);
                    }
                    if answer.follow_pages {
                        follow_pages(&mut json, request, answer.last_page);
                    }
                    deep_nest(serde_json::to_string(&json).unwrap())
                }
                None => seed.bytes.to_vec(),
            };
            if let Some(at) = truncate_at {
                text.truncate(at % (text.len() + 1));
            }
            Bytes::from(text)
        }
    };
    UpstreamResponse {
        status: answer.status,
        retry_after: answer.retry_after.clone(),
        body,
        received_at: answer.received_at,
    }
}

/// Whether the fixture `name` documents a success answer to a call of `path`.
fn answers(name: &str, path: &str) -> bool {
    if name.starts_with("error_") || name.starts_with("invalid_") {
        return false;
    }
    if path.ends_with("/messages") {
        name.starts_with("messages_") || name.starts_with("conformance_messages")
    } else if path.starts_with("/chatbots/") && path.contains("/conversations/") {
        name.starts_with("retrieve_") || name.starts_with("conformance_retrieve")
    } else if path.starts_with("/chatbots/") {
        name.starts_with("list_") || name.starts_with("conformance_list")
    } else {
        true
    }
}

/// One step of a path into a JSON document.
#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every node of `json` as a path of object keys and array indexes.
fn paths(json: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match json {
        Value::Object(o) => {
            for (k, v) in o {
                prefix.push(Seg::Key(k.clone()));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                prefix.push(Seg::Index(i));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(json: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(json, |v, seg| match seg {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

fn apply(json: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    paths(json, &mut Vec::new(), &mut all);
    let path = &all[m.at % all.len()];
    match &m.kind {
        MutationKind::Replace(v) => *node(json, path) = v.clone(),
        MutationKind::DeepNest { closed } => {
            let marker = if *closed {
                format!("{DEEP_MARKER}]")
            } else {
                DEEP_MARKER.to_owned()
            };
            *node(json, path) = Value::String(marker);
        }
        MutationKind::Remove => match path.split_last() {
            None => *json = Value::Null,
            Some((last, parent)) => match (node(json, parent), last) {
                (Value::Object(o), Seg::Key(k)) => {
                    o.remove(k);
                }
                (Value::Array(a), Seg::Index(i)) => {
                    a.remove(*i);
                }
                _ => {}
            },
        },
        MutationKind::AddField(k, v) => {
            let target = match node(json, path) {
                Value::Object(_) => path.as_slice(),
                _ => path.split_last().map_or(&[][..], |(_, p)| p),
            };
            if let Value::Object(o) = node(json, target) {
                o.insert(k.clone(), v.clone());
            }
        }
        MutationKind::EmptyArray | MutationKind::DuplicateArray => {
            let target = match node(json, path) {
                Value::Array(_) => path.as_slice(),
                _ => path.split_last().map_or(&[][..], |(_, p)| p),
            };
            if let Value::Array(a) = node(json, target) {
                if matches!(m.kind, MutationKind::EmptyArray) {
                    a.clear();
                } else {
                    let copy = a.clone();
                    a.extend(copy);
                }
            }
        }
    }
}

/// Sets `data.pages.current_page` to the page the request asked for (and
/// `last_page` when given), when the answer has such a field, and makes each
/// page's conversations distinct and older than the page before, as a vendor
/// whose pages really differ would.
fn follow_pages(json: &mut Value, request: &UpstreamRequest, last_page: Option<u64>) {
    let Some(page) = request
        .query
        .iter()
        .find(|(k, _)| *k == "page")
        .and_then(|(_, v)| v.parse::<u64>().ok())
    else {
        return;
    };
    if let Some(pages) = json
        .get_mut("data")
        .and_then(|d| d.get_mut("pages"))
        .and_then(Value::as_object_mut)
    {
        pages.insert("current_page".to_owned(), Value::from(page));
        if let Some(last) = last_page {
            pages.insert("last_page".to_owned(), Value::from(last));
        }
    }
    // The fixtures span under two days.
    let age = i64::try_from(page.saturating_sub(1))
        .ok()
        .and_then(|p| p.checked_mul(2))
        .and_then(chrono::TimeDelta::try_days);
    let conversations = json
        .get_mut("data")
        .and_then(|d| d.get_mut("conversations"))
        .and_then(Value::as_array_mut);
    for c in conversations.into_iter().flatten() {
        if let Some(Value::String(id)) = c.get_mut("id") {
            id.push_str(&format!("-p{page}"));
        }
        if let Some(Value::String(t)) = c.get_mut("created_at") {
            let older = DateTime::parse_from_rfc3339(t)
                .ok()
                .zip(age)
                .and_then(|(t, age)| t.checked_sub_signed(age));
            if let Some(older) = older {
                *t = older.to_rfc3339();
            }
        }
    }
}

/// Swaps the deep-nesting markers for 10,000 `[` (and as many `]` when closed).
fn deep_nest(text: String) -> Vec<u8> {
    if !text.contains(DEEP_MARKER) {
        return text.into_bytes();
    }
    let open = "[".repeat(10_000);
    let closed = format!("{open}{}", "]".repeat(10_000));
    text.replace(&format!("\"{DEEP_MARKER}]\""), &closed)
        .replace(&format!("\"{DEEP_MARKER}\""), &open)
        .into_bytes()
}

/// Runs `op` against `vendor` the way the gateway does: every request is
/// answered from the pool; a retryable error is answered again up to
/// `vendor.retries` times. Fails when the operation outlives [`MAX_STEPS`].
fn drive<T>(
    op: &mut dyn Operation<T>,
    vendor: &Vendor,
    seeds: &[Seed],
) -> Result<Result<T, ProviderError>, TestCaseError> {
    let mut step = op.start();
    let mut last: Option<UpstreamRequest> = None;
    let mut retries = vendor.retries;
    for call in 0..=MAX_STEPS {
        let request = match step {
            Ok(Step::Done(value)) => return Ok(Ok(value)),
            Ok(Step::Send(request)) => request,
            Err(e) if e.is_retryable() && retries > 0 => match last.take() {
                Some(request) => {
                    retries -= 1;
                    request
                }
                None => return Ok(Err(e)),
            },
            Err(e) => return Ok(Err(e)),
        };
        if call == MAX_STEPS {
            return Err(TestCaseError::fail(format!(
                "still asking after {MAX_STEPS} calls: {request:?}"
            )));
        }
        let pick = vendor.picks[call % vendor.picks.len()];
        let answer = &vendor.answers[pick % vendor.answers.len()];
        let response = materialize(answer, seeds, &request);
        last = Some(request);
        step = op.on_response(response);
    }
    unreachable!("the loop returns by its last pass")
}

/// `YYYY-MM-DDTHH:MM:SS(.d+)?Z`, exactly.
fn is_normalized_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed || b[b.len() - 1] != b'Z' {
        return false;
    }
    match &b[19..b.len() - 1] {
        [] => true,
        [b'.', rest @ ..] => !rest.is_empty() && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn check_time(value: &Value, what: &str, nullable: bool) -> Result<(), TestCaseError> {
    match value {
        Value::Null if nullable => Ok(()),
        Value::String(s) if is_normalized_time(s) => Ok(()),
        other => Err(TestCaseError::fail(format!(
            "{what} is not a normalized timestamp: {other}"
        ))),
    }
}

fn check_conversation(c: &Conversation, kind: ProviderKind) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.provider, kind);
    prop_assert_eq!(c.chatbot_id.as_str(), BOT);
    // `raw` is the vendor's own object, verbatim: it may nest deeper than
    // serde_json parses back (the gateway writes it with `to_vec`, checked by
    // the callers), and it holds no normalized timestamp.
    let normalized = Conversation {
        raw: None,
        ..c.clone()
    };
    let json = serde_json::to_value(&normalized).map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_time(&json["created_at"], "created_at", false)?;
    check_time(&json["updated_at"], "updated_at", true)?;
    for m in json["messages"].as_array().into_iter().flatten() {
        check_time(&m["created_at"], "messages[].created_at", true)?;
    }
    Ok(())
}

/// A refusal must stay a refusal once the gateway sanitizes it: bounded, and
/// free of control characters and of the key.
fn check_error(e: ProviderError) -> Result<(), TestCaseError> {
    let clean = e.sanitize(KEY).to_string();
    let dangerous =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    prop_assert!(!clean.contains(dangerous), "unescaped control: {:?}", clean);
    prop_assert!(!clean.contains(&KEY[..8]), "key left in {:?}", clean);
    prop_assert!(
        clean.chars().count() < 600,
        "unbounded: {} chars",
        clean.len()
    );
    Ok(())
}

/// The page as the gateway serializes it.
#[derive(Serialize)]
struct PageBody<'a> {
    data: &'a [Conversation],
    has_more: bool,
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn list_operations_survive_hostile_vendors(
        subject in any::<usize>(),
        query in list_query(),
        (scan, per_page) in options(),
        vendor in vendor(),
    ) {
        let subjects = subjects();
        let (kind, dialect, dir) = subjects[subject % subjects.len()];
        let a = adapter(kind, &AdapterOptions { dialect, max_scan_pages: NonZeroU32::new(scan).unwrap() });
        let mut op = a.list(target("vendor-bot-1"), &query, per_page);
        match drive(op.as_mut(), &vendor, seeds(dir))? {
            Err(e) => check_error(e)?,
            Ok(result) => {
                let page = &result.page;
                prop_assert!(page.conversations.len() <= query.size.get() as usize);
                for c in &page.conversations {
                    check_conversation(c, kind)?;
                }
                let body = PageBody { data: &page.conversations, has_more: page.has_more };
                prop_assert!(serde_json::to_vec(&body).is_ok());
            }
        }
    }

    #[test]
    fn get_operations_survive_hostile_vendors(
        subject in any::<usize>(),
        conversation_id in prop_oneof![Just("8977617953".to_owned()), any::<String>()],
        include_raw in any::<bool>(),
        scan in 1u32..=100,
        vendor in vendor(),
    ) {
        let subjects = subjects();
        let (kind, dialect, dir) = subjects[subject % subjects.len()];
        let a = adapter(kind, &AdapterOptions { dialect, max_scan_pages: NonZeroU32::new(scan).unwrap() });
        let mut op = match a.get(target("vendor-bot-1"), &conversation_id, include_raw) {
            Ok(op) => op,
            Err(e) => {
                prop_assert!(matches!(e, ProviderError::NotSupported(_)), "{:?}", e);
                return Ok(());
            }
        };
        match drive(op.as_mut(), &vendor, seeds(dir))? {
            Err(e) => check_error(e)?,
            Ok(c) => {
                check_conversation(&c, kind)?;
                prop_assert!(serde_json::to_vec(&c).is_ok());
            }
        }
    }
}

#[test]
fn the_timestamp_check_is_the_documented_pattern() {
    for good in [
        "2024-01-01T00:00:00Z",
        "0000-01-01T00:00:00.5Z",
        "9999-12-31T23:59:60.123456789Z",
    ] {
        assert!(is_normalized_time(good), "{good}");
    }
    for bad in [
        "+10000-01-01T23:58:59Z",
        "-0001-12-31T00:01:00Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00+00:00",
        "2024-01-01 00:00:00Z",
    ] {
        assert!(!is_normalized_time(bad), "{bad}");
    }
}

#[test]
fn every_kind_has_fixtures_to_mutate() {
    for (kind, _, dir) in subjects() {
        assert!(seeds(dir).len() >= 5, "{kind}");
        assert!(seeds(dir).iter().all(|s| s.json.is_some()), "{kind}");
    }
}
