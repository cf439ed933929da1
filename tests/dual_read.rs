//! Dual-read bots (SPEC §8, issue #6) through the real server against the
//! emulated vendors: a bot listing `[[bots.X.backends]]` on Chatbase and Chatling
//! answers one merged, newest-first stream whose pages are exact slices of the
//! merge of every backend's filtered stream, read with O(total / vendor page)
//! vendor calls, both backends concurrently; a failing backend fails the page
//! (or serves stale chunks within `stale_if_error_secs`), never a page missing
//! that vendor's history. Also: `X-Provider`, `/api/v1/bots`, detail lookups and
//! config validation of `backends`.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

mod common;

use std::cmp::Reverse;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chatgate::clock::ManualClock;
use chatgate_emulator::{self as emulator, EmulatorState, Vendor};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{fault, status, Harness, Resp};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The merged bot the tests configure, and its vendor ids.
const BOT: &str = "m";
const CB_ID: &str = "cb-merged";
const CL_ID: &str = "7700001";

/// Chatbase's documented `source` labels and their canonical ids (SPEC §2.5);
/// `None` = the field is missing.
const CB_SOURCES: [(Option<&str>, &str); 12] = [
    (Some("API"), "api"),
    (Some("Chatbase site"), "website"),
    (Some("Instagram"), "instagram"),
    (Some("Messenger"), "messenger"),
    (Some("Slack"), "slack"),
    (Some("Unspecified"), "unspecified"),
    (Some("WhatsApp"), "whatsapp"),
    (Some("Playground"), "playground"),
    (Some("Action preview"), "action_preview"),
    (Some("Widget or Iframe"), "widget"),
    (Some(""), "unspecified"),
    (None, "unspecified"),
];

/// Canonical sources other than `unspecified`.
const CANONICAL: [&str; 9] = [
    "api",
    "website",
    "widget",
    "whatsapp",
    "messenger",
    "instagram",
    "slack",
    "playground",
    "action_preview",
];

/// What a conversation of the merged stream must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Conv {
    provider: &'static str,
    id: String,
    created: DateTime<Utc>,
    source: &'static str,
    customer: Option<String>,
}

impl Conv {
    /// Reads a normalized conversation from a gateway answer.
    fn from_api(c: &Value, bot: &str) -> Conv {
        assert_eq!(c["chatbot_id"], bot, "{c}");
        let provider = match c["provider"].as_str().unwrap() {
            "chatbase" => "chatbase",
            "chatling" => "chatling",
            other => panic!("unexpected provider {other}"),
        };
        let source = CB_SOURCES
            .iter()
            .map(|(_, canonical)| *canonical)
            .find(|s| c["source"] == *s)
            .unwrap_or_else(|| panic!("unexpected source in {c}"));
        Conv {
            provider,
            id: c["id"].as_str().unwrap().to_owned(),
            created: common::created_at(c),
            source,
            customer: c["customer"].as_str().map(str::to_owned),
        }
    }

    fn key(&self) -> (&'static str, &str) {
        (self.provider, &self.id)
    }
}

/// Random vendor-native data for one Chatbase and one Chatling bot, with the
/// expected normalized conversations in the order they were generated.
struct DataSet {
    chatbase: Vec<Value>,
    chatling: Vec<Value>,
    cb: Vec<Conv>,
    cl: Vec<Conv>,
}

/// 2024-05-10T00:00:00Z: every timestamp lies on one of 5 days × 4 slots, so
/// equal `created_at` values are common within and across backends.
fn instant(day: i64, slot: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 10, 0, 0, 0).unwrap()
        + chrono::Duration::days(day)
        + chrono::Duration::hours(6 * slot)
}

fn random_instant(rng: &mut StdRng) -> DateTime<Utc> {
    instant(rng.random_range(0..5), rng.random_range(0..4))
}

fn generate(rng: &mut StdRng, cb_len: usize, cl_len: usize) -> DataSet {
    let mut chatling = Vec::new();
    let mut cl = Vec::new();
    for i in 0..cl_len {
        let created = random_instant(rng);
        let id = (9_100_000 + i).to_string();
        let contact = rng.random_bool(0.7).then(|| format!("contact-{i}"));
        let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
        chatling.push(json!({
            "id": id,
            "contact_id": contact,
            "archived": 0,
            "important": 0,
            "created_at": stamp(created),
            "messages": [
                {"text": "Happy to help.", "role": "bot",
                 "created_at": stamp(created + chrono::Duration::seconds(5))},
                {"text": format!("question {i}"), "role": "user", "created_at": stamp(created)},
            ],
        }));
        cl.push(Conv {
            provider: "chatling",
            id,
            created,
            source: "unspecified",
            customer: contact,
        });
    }
    let mut chatbase = Vec::new();
    let mut cb = Vec::new();
    let mut shared: Vec<String> = cl.iter().map(|c| c.id.clone()).collect();
    shared.shuffle(rng);
    for i in 0..cb_len {
        let created = random_instant(rng);
        // The same id string as a Chatling conversation: both must be listed.
        let id = match rng.random_bool(0.3).then(|| shared.pop()).flatten() {
            Some(id) => id,
            None => format!("cb_{i:04}"),
        };
        let (label, canonical) = *CB_SOURCES.choose(rng).unwrap();
        let customer = rng.random_bool(0.7).then(|| format!("user{i}@example.com"));
        let mut obj = json!({
            "id": id,
            "chatbot_id": CB_ID,
            "created_at": created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "updated_at": (created + chrono::Duration::seconds(90))
                .format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "customer": customer,
            "messages": [
                {"role": "user", "content": format!("hello {i}")},
                {"role": "assistant", "content": "Hi! How can I help?"},
            ],
        });
        if let Some(label) = label {
            obj["source"] = json!(label);
        }
        chatbase.push(obj);
        cb.push(Conv {
            provider: "chatbase",
            id,
            created,
            source: canonical,
            customer,
        });
    }
    DataSet {
        chatbase,
        chatling,
        cb,
        cl,
    }
}

/// A list filter and its query string.
#[derive(Debug, Clone, Default)]
struct Filter {
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    sources: Option<Vec<&'static str>>,
}

impl Filter {
    fn query(&self) -> String {
        let mut q = String::new();
        if let Some(s) = self.start {
            q += &format!("&startDate={s}");
        }
        if let Some(e) = self.end {
            q += &format!("&endDate={e}");
        }
        if let Some(sources) = &self.sources {
            q += &format!("&filteredSources={}", sources.join(","));
        }
        q
    }

    fn accepts(&self, c: &Conv) -> bool {
        let date = c.created.date_naive();
        self.start.is_none_or(|s| date >= s)
            && self.end.is_none_or(|e| date <= e)
            && self
                .sources
                .as_ref()
                .is_none_or(|set| set.contains(&c.source))
    }

    fn random_dates(rng: &mut StdRng) -> (Option<NaiveDate>, Option<NaiveDate>) {
        let day = |d: i64| instant(d, 0).date_naive();
        let start = rng.random_range(-1..6);
        let end = start + rng.random_range(0..3);
        match rng.random_range(0..4) {
            0 => (Some(day(start)), None),
            1 => (None, Some(day(end))),
            _ => (Some(day(start)), Some(day(end))),
        }
    }

    fn random_sources(rng: &mut StdRng, unspecified: bool) -> Vec<&'static str> {
        let n = rng.random_range(usize::from(!unspecified)..=3);
        let mut picked: Vec<&'static str> = CANONICAL.choose_multiple(rng, n).copied().collect();
        if unspecified {
            picked.push("unspecified");
        }
        picked.shuffle(rng);
        picked
    }

    /// No filter; dates; sources without and with `unspecified`; both.
    fn cases(rng: &mut StdRng) -> Vec<Filter> {
        let (start, end) = Self::random_dates(rng);
        let (start2, end2) = Self::random_dates(rng);
        vec![
            Filter::default(),
            Filter {
                start,
                end,
                sources: None,
            },
            Filter {
                sources: Some(Self::random_sources(rng, false)),
                ..Filter::default()
            },
            Filter {
                sources: Some(Self::random_sources(rng, true)),
                ..Filter::default()
            },
            Filter {
                start: start2,
                end: end2,
                sources: Some(Self::random_sources(rng, true)),
            },
        ]
    }
}

/// A backend's stream as its vendor lists it: newest first, stable on ties.
fn vendor_order(convs: &[Conv]) -> Vec<Conv> {
    let mut v = convs.to_vec();
    v.sort_by_key(|c| Reverse(c.created));
    v
}

/// The merge SPEC §8 promises: each backend filtered in its vendor order, merged
/// newest first, ties in backend config order then vendor order.
fn expected_merge(backends: &[&[Conv]], filter: &Filter) -> Vec<Conv> {
    let mut all: Vec<Conv> = backends
        .iter()
        .flat_map(|b| vendor_order(b))
        .filter(|c| filter.accepts(c))
        .collect();
    all.sort_by_key(|c| Reverse(c.created));
    all
}

/// Panics at the first difference, with context.
fn assert_same(got: &[Conv], want: &[Conv], ctx: &str) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{ctx}: first difference at index {i} (got {} items, want {}):\n  got  {:?}\n  want {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

/// `[[bots.<name>.backends]]` tables for `backends` (provider, chatbot id).
fn with_bot(toml: String, name: &str, backends: &[(&str, &str)]) -> String {
    let mut toml = toml;
    for (provider, id) in backends {
        toml += &format!(
            "\n[[bots.{name}.backends]]\nprovider = \"{provider}\"\nchatbot_id = \"{id}\"\n"
        );
    }
    toml
}

fn list_path(bot: &str, page: u64, size: u64, filter: &str) -> String {
    format!("/api/v1/get-conversations?chatbotId={bot}&page={page}&size={size}{filter}")
}

/// One page, checked for its envelope; returns its conversations and `next_page`.
async fn get_page(
    h: &Harness,
    bot: &str,
    page: u64,
    size: u64,
    filter: &str,
    ctx: &str,
) -> (Vec<Conv>, Option<u64>) {
    let res = h.get(&list_path(bot, page, size, filter)).await;
    assert_eq!(
        res.status.as_u16(),
        200,
        "{ctx} page {page}: {}",
        String::from_utf8_lossy(&res.body)
    );
    let body = res.json();
    assert_eq!(body["page"], page, "{ctx}");
    assert_eq!(body["size"], size, "{ctx}");
    let data: Vec<Conv> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Conv::from_api(c, bot))
        .collect();
    let next = match &body["next_page"] {
        Value::Null => None,
        v => Some(v.as_u64().unwrap()),
    };
    (data, next)
}

/// The slice of `all` page `page` of `size` must hold, and whether a later page exists.
fn slice(all: &[Conv], page: u64, size: u64) -> (&[Conv], bool) {
    let start = ((page - 1) * size) as usize;
    let end = (page * size) as usize;
    (
        &all[start.min(all.len())..end.min(all.len())],
        end < all.len(),
    )
}

/// Pages from 1 until `next_page` is null; checks every page is full but the
/// last, `next_page` is null exactly on the last, and returns the concatenation.
async fn page_through(h: &Harness, bot: &str, size: u64, filter: &str, ctx: &str) -> Vec<Conv> {
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let (data, next) = get_page(h, bot, page, size, filter, ctx).await;
        assert!(data.len() <= size as usize, "{ctx} page {page}");
        all.extend(data.iter().cloned());
        match next {
            Some(n) => {
                assert_eq!(n, page + 1, "{ctx}");
                assert_eq!(
                    data.len(),
                    size as usize,
                    "{ctx}: page {page} is not last, so full"
                );
            }
            None => {
                assert!(
                    page == 1 || !data.is_empty(),
                    "{ctx}: page {page} is an empty trailing page"
                );
                return all;
            }
        }
        page += 1;
        assert!(page < 1000, "{ctx}: paging never ends");
    }
}

/// A state whose merged bot holds `data`, with Chatling answering `per_page` at a time.
fn state_with(data: &DataSet, per_page: u32) -> Arc<EmulatorState> {
    let state = EmulatorState::new(emulator::DEFAULT_SEED);
    state.set_conversations(Vendor::Chatbase, CB_ID, data.chatbase.clone());
    state.set_conversations(Vendor::Chatling, CL_ID, data.chatling.clone());
    state.set_chatling_per_page(per_page);
    state
}

#[actix_rt::test]
async fn merged_pages_are_exact_slices_of_the_merge_of_every_backend() {
    let mut shared_seen = 0;
    let mut cross_ties_seen = 0;
    for (round, seed) in [11u64, 12, 13, 14, 15, 16, 17].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(seed);
        // Edge shapes first (one side empty, both over a 100-conversation chunk,
        // exactly one chunk each), then random sizes.
        let (cb_len, cl_len) = match round {
            0 => (0, rng.random_range(1..=150)),
            1 => (rng.random_range(1..=150), 0),
            2 => (150, 150),
            3 => (100, 100),
            _ => (rng.random_range(0..=150), rng.random_range(0..=150)),
        };
        let data = generate(&mut rng, cb_len, cl_len);
        // Chatling's page size must keep 150 conversations within the adapter's
        // 50-page scan bound.
        let per_page = *[4u32, 5, 7, 10, 25, 100].choose(&mut rng).unwrap();
        let chatbase_first = rng.random_bool(0.5);
        let (order, backends): (Vec<(&str, &str)>, Vec<&[Conv]>) = if chatbase_first {
            (
                vec![("chatbase", CB_ID), ("chatling", CL_ID)],
                vec![&data.cb, &data.cl],
            )
        } else {
            (
                vec![("chatling", CL_ID), ("chatbase", CB_ID)],
                vec![&data.cl, &data.cb],
            )
        };
        let cl_ids: HashSet<&str> = data.cl.iter().map(|c| c.id.as_str()).collect();
        shared_seen += data
            .cb
            .iter()
            .filter(|c| cl_ids.contains(c.id.as_str()))
            .count();
        let cl_times: HashSet<DateTime<Utc>> = data.cl.iter().map(|c| c.created).collect();
        cross_ties_seen += data
            .cb
            .iter()
            .filter(|c| cl_times.contains(&c.created))
            .count();

        let h = Harness::start_on(state_with(&data, per_page), |t| with_bot(t, BOT, &order)).await;
        for filter in Filter::cases(&mut rng) {
            let want = expected_merge(&backends, &filter);
            let q = filter.query();
            let ctx = format!(
                "seed {seed} (chatbase {cb_len}, chatling {cl_len}, per_page {per_page}, \
                 chatbase first {chatbase_first}) filter {q:?}"
            );
            // Out of order first, while this filter's chunks are cold.
            let size = rng.random_range(1..=100u64);
            let last = want.len() as u64 / size + 2;
            let mut pages: Vec<u64> = (1..=last).collect();
            pages.shuffle(&mut rng);
            for &page in pages.iter().take(6) {
                let ctx = format!("{ctx} size {size} random page {page}");
                let (got, next) = get_page(&h, BOT, page, size, &q, &ctx).await;
                let (expected, more) = slice(&want, page, size);
                assert_same(&got, expected, &ctx);
                assert_eq!(next, more.then_some(page + 1), "{ctx}: next_page");
            }
            // Then sequentially to the end.
            let size = if rng.random_bool(0.5) {
                rng.random_range(1..=10u64)
            } else {
                rng.random_range(1..=100u64)
            };
            let ctx = format!("{ctx} size {size}");
            let got = page_through(&h, BOT, size, &q, &ctx).await;
            assert_same(&got, &want, &ctx);
            let keys: HashSet<(&str, &str)> = got.iter().map(Conv::key).collect();
            assert_eq!(keys.len(), got.len(), "{ctx}: no duplicates");
        }
        h.stop().await;
    }
    assert!(
        shared_seen > 0,
        "the seeds put one id string in both backends"
    );
    assert!(
        cross_ties_seen > 0,
        "the seeds give equal created_at across backends"
    );
}

/// Vendor-native data for the cost test: distinct times, interleaved.
fn interleaved(cb_len: usize, cl_len: usize) -> DataSet {
    let mut rng = StdRng::seed_from_u64(99);
    let mut data = generate(&mut rng, cb_len, cl_len);
    let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut minutes: Vec<i64> = (0..(cb_len + cl_len) as i64).collect();
    minutes.shuffle(&mut rng);
    let stamps = data
        .cb
        .iter_mut()
        .zip(data.chatbase.iter_mut())
        .chain(data.cl.iter_mut().zip(data.chatling.iter_mut()));
    for ((conv, raw), minute) in stamps.zip(minutes) {
        conv.created = base + chrono::Duration::minutes(minute);
        raw["created_at"] = json!(conv.created.to_rfc3339());
    }
    data
}

/// Vendor calls to read the first `n` conversations of a backend of `len`
/// conversations, `per_call` at a time.
fn calls_for(n: u64, len: u64, per_call: u64) -> u64 {
    n.min(len).div_ceil(per_call).max(1)
}

#[actix_rt::test]
async fn paging_a_merged_bot_to_the_end_costs_each_backend_one_read() {
    const CB_LEN: u64 = 250;
    const CL_LEN: u64 = 150;
    const PER_PAGE: u64 = 5;
    let data = interleaved(CB_LEN as usize, CL_LEN as usize);
    let want = expected_merge(&[&data.cb, &data.cl], &Filter::default());
    let order = [("chatbase", CB_ID), ("chatling", CL_ID)];
    let mut observed = Vec::new();
    for size in [3u64, 1] {
        let h = Harness::start_on(state_with(&data, PER_PAGE as u32), |t| {
            with_bot(t, BOT, &order)
        })
        .await;
        let (cb0, cl0) = (h.calls(Vendor::Chatbase), h.calls(Vendor::Chatling));
        let got = page_through(&h, BOT, size, "", &format!("size {size}")).await;
        assert_same(&got, &want, &format!("size {size}"));
        let cb = h.calls(Vendor::Chatbase) - cb0;
        let cl = h.calls(Vendor::Chatling) - cl0;
        let pages = (want.len() as u64).div_ceil(size);
        // Reading every backend from its start for every page (O(pages²)).
        let naive_cb: u64 = (1..=pages)
            .map(|n| calls_for(n * size + 1, CB_LEN, 100))
            .sum();
        let naive_cl: u64 = (1..=pages)
            .map(|n| calls_for(n * size + 1, CL_LEN, PER_PAGE))
            .sum();
        println!(
            "size {size}: {pages} gateway pages; vendor calls chatbase {cb}, chatling {cl}; \
             re-reading per page would cost chatbase {naive_cb}, chatling {naive_cl}"
        );
        assert!(
            cb <= CB_LEN / 100 + 2,
            "size {size}: {cb} Chatbase calls for {CB_LEN} conversations"
        );
        assert!(
            cl <= CL_LEN / PER_PAGE + 2,
            "size {size}: {cl} Chatling calls for {CL_LEN} conversations at {PER_PAGE} per page"
        );
        assert!(
            cb + cl < pages,
            "size {size}: fewer vendor calls ({}) than gateway pages ({pages})",
            cb + cl
        );
        assert!(cb * 10 < naive_cb && cl * 10 < naive_cl, "size {size}");
        observed.push((cb, cl));
        h.stop().await;
    }
    assert_eq!(
        observed[0], observed[1],
        "the vendor cost does not depend on the number of gateway pages (size 3 vs 1)"
    );
}

/// The demo's `migrating` bot (Chatbase `cb-support` then Chatling `5551234001`),
/// merged by the test from the emulator's data.
fn migrating_stream(state: &EmulatorState) -> Vec<(&'static str, String, DateTime<Utc>)> {
    let stream = |vendor: Vendor, bot: &str, provider: &'static str| {
        state
            .conversations(vendor, bot)
            .iter()
            .map(|c| {
                let created = DateTime::parse_from_rfc3339(c["created_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc);
                (provider, c["id"].as_str().unwrap().to_owned(), created)
            })
            .collect::<Vec<_>>()
    };
    let mut all = stream(Vendor::Chatbase, emulator::CHATBASE_BOT, "chatbase");
    all.extend(stream(Vendor::Chatling, emulator::CHATLING_BOT, "chatling"));
    all.sort_by_key(|c| Reverse(c.2));
    all
}

fn providers_and_ids(res: &Resp) -> Vec<(String, String)> {
    res.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["provider"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected_ids(
    all: &[(&'static str, String, DateTime<Utc>)],
    page: usize,
    size: usize,
) -> Vec<(String, String)> {
    all.iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|(p, id, _)| ((*p).to_owned(), id.clone()))
        .collect()
}

/// A meeting point for the vendor calls of one page: each [`held_vendor`]
/// holds its call until every one has a call in flight.
struct Rendezvous {
    /// Which proxies have a call waiting.
    arrived: Vec<AtomicBool>,
    /// Set when a proxy gave up waiting: its call was not concurrent.
    gave_up: AtomicBool,
    /// Where the calls go once all have met.
    emulator: OnceLock<SocketAddr>,
}

impl Rendezvous {
    fn new(parties: usize) -> Arc<Self> {
        Arc::new(Self {
            arrived: (0..parties).map(|_| AtomicBool::new(false)).collect(),
            gave_up: AtomicBool::new(false),
            emulator: OnceLock::new(),
        })
    }
}

/// A "vendor" on a raw socket in front of the emulator: each call is held until
/// every party of `meet` has one in flight, then relayed to the emulator and
/// its answer back. A gateway calling the backends one after the other never
/// gets past the first: that proxy gives up after 20 s (only so a broken
/// gateway fails the test instead of hanging it) and says so. Returns its port.
fn held_vendor(meet: Arc<Rendezvous>, me: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut client) = stream else { return };
            let meet = meet.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                meet.arrived[me].store(true, Ordering::SeqCst);
                let waiting = Instant::now();
                while !meet.arrived.iter().all(|a| a.load(Ordering::SeqCst)) {
                    if waiting.elapsed() > Duration::from_secs(20) {
                        meet.gave_up.store(true, Ordering::SeqCst);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                // The same request, on a connection that ends with its answer.
                let head = String::from_utf8_lossy(&head);
                let mut relayed: String = head
                    .trim_end()
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                relayed.push_str("connection: close\r\n\r\n");
                let mut upstream = TcpStream::connect(meet.emulator.get().unwrap()).unwrap();
                upstream.write_all(relayed.as_bytes()).unwrap();
                let mut answer = Vec::new();
                upstream.read_to_end(&mut answer).unwrap();
                let _ = client.write_all(&answer);
            });
        }
    });
    port
}

/// Points the demo config's `vendor` provider at `port` (same path prefix).
fn vendor_at(toml: String, prefix: &str, port: u16) -> String {
    toml.lines()
        .map(|l| {
            if l.starts_with("base_url") && l.contains(prefix) {
                format!("base_url = \"http://127.0.0.1:{port}{prefix}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[actix_rt::test]
async fn backends_are_read_concurrently() {
    // Each backend's call is held until the other backend's call has arrived
    // too: the page can only be answered if both were in flight at once.
    let meet = Rendezvous::new(2);
    let chatbase = held_vendor(meet.clone(), 0);
    let chatling = held_vendor(meet.clone(), 1);
    let state = EmulatorState::new(emulator::DEFAULT_SEED);
    // One vendor call per backend for the first chunk.
    state.set_chatling_per_page(100);
    let h = Harness::start_on(state, |t| {
        let t = vendor_at(t, "/chatbase/api/v1", chatbase);
        vendor_at(t, "/chatling/v2", chatling)
    })
    .await;
    meet.emulator.set(h.emu.addr).unwrap();
    let res = h
        .get("/api/v1/get-conversations?chatbotId=migrating&size=5")
        .await;
    res.ok();
    assert!(
        !meet.gave_up.load(Ordering::SeqCst),
        "a backend's call waited in vain for the other's: they were made one after the other"
    );
    assert_eq!(h.calls(Vendor::Chatbase), 1);
    assert_eq!(h.calls(Vendor::Chatling), 1);
    h.stop().await;
}

#[actix_rt::test]
async fn a_failing_backend_fails_the_merged_page_with_its_own_error() {
    for (failing, provider) in [
        (Vendor::Chatling, "chatling"),
        (Vendor::Chatbase, "chatbase"),
    ] {
        let h = Harness::start().await;
        h.state().add_fault(fault(failing, status(500, None)));
        let res = h
            .get("/api/v1/get-conversations?chatbotId=migrating&size=10")
            .await;
        let body = res.expect_error(502, "upstream_error");
        assert_eq!(body["provider"], provider, "{body}");
        assert_eq!(body["upstream_status"], 500, "{body}");
        // The error was not cached: once the vendor is back, both histories.
        h.state().clear_faults();
        let res = h
            .get("/api/v1/get-conversations?chatbotId=migrating&size=10")
            .await;
        assert_eq!(res.header("x-cache"), Some("MISS"));
        assert_eq!(
            providers_and_ids(&res),
            expected_ids(&migrating_stream(h.state()), 1, 10)
        );
        h.stop().await;
    }
}

#[actix_rt::test]
async fn pages_needing_a_failing_backends_next_chunk_fail_instead_of_dropping_its_history() {
    let data = interleaved(60, 150);
    let want = expected_merge(&[&data.cb, &data.cl], &Filter::default());
    let order = [("chatbase", CB_ID), ("chatling", CL_ID)];
    let h = Harness::start_on(state_with(&data, 10), |t| {
        // Every page below fails at Chatling: keep the breaker out of the way.
        with_bot(t, BOT, &order).replace(
            "[providers.chatling]\n",
            "[providers.chatling]\ncircuit_failure_threshold = 1000\n",
        )
    })
    .await;
    // Both backends' first chunks are read and cached; then Chatling fails.
    get_page(&h, BOT, 1, 5, "", "warm-up").await;
    h.state()
        .add_fault(fault(Vendor::Chatling, status(500, None)));
    // Merged-stream indices of Chatling's 100th conversation (the last of its
    // first chunk) and of its 101st (the first only its second chunk holds).
    let chatling_at: Vec<u64> = want
        .iter()
        .enumerate()
        .filter(|(_, c)| c.provider == "chatling")
        .map(|(i, _)| i as u64)
        .collect();
    let (chunk_one_end, chunk_two) = (chatling_at[99], chatling_at[100]);
    let size = 7u64;
    let (mut served, mut failed) = (0, 0);
    for page in 1..=want.len() as u64 / size + 1 {
        let res = h.get(&list_path(BOT, page, size, "")).await;
        let (expected, more) = slice(&want, page, size);
        let ctx = format!("page {page} of size {size} (Chatling chunk 2 starts at {chunk_two})");
        if res.status.as_u16() == 200 {
            served += 1;
            let body = res.json();
            let got: Vec<Conv> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| Conv::from_api(c, BOT))
                .collect();
            assert_same(&got, expected, &ctx);
            assert_eq!(
                body["next_page"].as_u64(),
                more.then_some(page + 1),
                "{ctx}"
            );
            assert!(
                page * size <= chunk_two,
                "{ctx}: served although it holds Chatling conversations it could not read"
            );
        } else {
            failed += 1;
            let body = res.expect_error(502, "upstream_error");
            assert_eq!(body["provider"], "chatling", "{ctx}: {body}");
            // A page ending before Chatling's first chunk is used up needs no
            // Chatling read at all.
            assert!(
                page * size > chunk_one_end,
                "{ctx}: failed although the cached chunks cover it"
            );
        }
    }
    println!("{served} pages served from cached chunks, {failed} failed at Chatling");
    assert!(served > 0 && failed > 0, "{served} served, {failed} failed");
    h.stop().await;
}

/// `[cache]` with short lifetimes (the demo config has no `[cache]` table).
fn short_cache(ttl: u64, stale: u64) -> impl FnOnce(String) -> String {
    move |toml| format!("{toml}\n[cache]\nttl_secs = {ttl}\nstale_if_error_secs = {stale}\n")
}

#[actix_rt::test]
async fn expired_chunks_serve_a_stale_merged_page_when_a_backend_fails() {
    let h = Harness::start_with(short_cache(1, 30)).await;
    let all = migrating_stream(h.state());
    let first = h
        .get("/api/v1/get-conversations?chatbotId=migrating&page=1&size=5")
        .await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(providers_and_ids(&first), expected_ids(&all, 1, 5));
    // Chunks (and the page) expire after 1 s; then Chatling fails.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    h.state()
        .add_fault(fault(Vendor::Chatling, status(500, None)));
    let chatling_before = h.calls(Vendor::Chatling);
    // Page 2 was never answered, so no response-cache entry can stand in: it is
    // assembled from Chatling's stale chunk.
    let res = h
        .get("/api/v1/get-conversations?chatbotId=migrating&page=2&size=5")
        .await;
    assert_eq!(
        res.status.as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&res.body)
    );
    assert_eq!(res.header("x-cache"), Some("STALE"));
    assert_eq!(res.header("x-provider"), Some("chatbase,chatling"));
    assert_eq!(providers_and_ids(&res), expected_ids(&all, 2, 5));
    assert!(
        h.calls(Vendor::Chatling) > chatling_before,
        "Chatling was asked before its stale chunk was used"
    );
    // Page 1 was answered before: still STALE, whichever cache stood in.
    let res = h
        .get("/api/v1/get-conversations?chatbotId=migrating&page=1&size=5")
        .await;
    assert_eq!(res.header("x-cache"), Some("STALE"));
    assert_eq!(providers_and_ids(&res), expected_ids(&all, 1, 5));
    h.stop().await;
}

#[actix_rt::test]
async fn a_no_cache_request_answered_from_stale_chunks_says_stale() {
    let h = Harness::start_with(short_cache(1, 30)).await;
    let all = migrating_stream(h.state());
    let path = "/api/v1/get-conversations?chatbotId=migrating&page=1&size=5";
    h.get(path).await.ok();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    h.state()
        .add_fault(fault(Vendor::Chatling, status(500, None)));
    let res = h
        .request(
            awc::http::Method::GET,
            "/api/v1/get-conversations?chatbotId=migrating&page=3&size=5",
            Some(chatgate::demo::DEMO_KEY),
            &[("Cache-Control", "no-cache")],
            None,
        )
        .await;
    assert_eq!(providers_and_ids(&res), expected_ids(&all, 3, 5));
    // A single-backend bot answers STALE here (cache.rs serves the stale entry
    // when the forced refresh fails); BYPASS would claim a fresh vendor answer.
    assert_eq!(
        res.header("x-cache"),
        Some("STALE"),
        "Chatling failed, so its part of the page is stale data"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_page_built_from_stale_chunks_is_not_served_past_the_stale_window() {
    // Chunks are fresh for 60 s and may stand in until 180 s after they were
    // read, on a clock the test moves.
    let clock = ManualClock::new();
    let h = Harness::start_with_clock(&clock, short_cache(60, 120)).await;
    h.get("/api/v1/get-conversations?chatbotId=migrating&page=1&size=5")
        .await
        .ok();
    // Chatling's chunk is fresh for 60 s: the fault bites only after that.
    h.state()
        .add_fault(fault(Vendor::Chatling, status(500, None)));
    clock.advance(Duration::from_secs(179));
    let path = "/api/v1/get-conversations?chatbotId=migrating&page=2&size=5";
    let stale = h.get(path).await;
    stale.ok();
    assert_eq!(stale.header("x-cache"), Some("STALE"));
    // Past the window (chunk read + ttl + stale_if_error = 180 s): Chatling
    // still fails and no data read within the window remains.
    clock.advance(Duration::from_secs(1));
    let res = h.get(path).await;
    assert_eq!(
        res.status.as_u16(),
        502,
        "X-Cache {:?}: Chatling data read more than ttl + stale_if_error ago was served",
        res.header("x-cache")
    );
    h.stop().await;
}

#[actix_rt::test]
async fn merged_bot_names_every_backend_kind_in_config_order() {
    let h = Harness::start_with(|t| {
        with_bot(
            t,
            "reversed",
            &[
                ("chatling", emulator::CHATLING_BOT),
                ("chatbase", emulator::CHATBASE_BOT),
            ],
        )
    })
    .await;
    let res = h
        .get("/api/v1/get-conversations?chatbotId=migrating&size=100")
        .await;
    res.ok();
    assert_eq!(res.header("x-provider"), Some("chatbase,chatling"));
    let providers: HashSet<String> = providers_and_ids(&res).into_iter().map(|p| p.0).collect();
    assert_eq!(
        providers,
        HashSet::from(["chatbase".to_owned(), "chatling".to_owned()]),
        "each conversation keeps its own provider"
    );
    let res = h
        .get("/api/v1/get-conversations?chatbotId=reversed&size=3")
        .await;
    res.ok();
    assert_eq!(res.header("x-provider"), Some("chatling,chatbase"));
    let bots = h.get("/api/v1/bots").await.ok();
    let provider_of = |name: &str| {
        bots["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .map(|b| b["provider"].clone())
    };
    assert_eq!(provider_of("migrating"), Some(json!("chatbase,chatling")));
    assert_eq!(provider_of("reversed"), Some(json!("chatling,chatbase")));
    h.stop().await;
}

#[actix_rt::test]
async fn detail_on_a_merged_bot_finds_the_backend_that_has_the_conversation() {
    let h = Harness::start().await;
    let chatling = h
        .state()
        .conversations(Vendor::Chatling, emulator::CHATLING_BOT);
    let id = chatling[3]["id"].as_str().unwrap().to_owned();
    let res = h
        .get(&format!("/api/v1/conversations/{id}?chatbotId=migrating"))
        .await;
    let body = res.ok();
    assert_eq!(body["data"]["id"], id.as_str());
    assert_eq!(body["data"]["provider"], "chatling");
    assert_eq!(body["data"]["chatbot_id"], "migrating");
    h.get("/api/v1/conversations/1234567890123?chatbotId=migrating")
        .await
        .expect_error(404, "not_found");
    h.stop().await;
}

const VALID_BASE: &str = r#"
[providers.chatbase]
api_key = "cb-key"
[providers.chatling]
api_key = "cl-key"
[clients.c]
key = "client-key-0123456789"
bots = ["*"]
"#;

fn config_problems(bot: &str) -> Vec<String> {
    match chatgate::config::from_toml_str(&format!("{VALID_BASE}{bot}")) {
        Ok(_) => panic!("accepted:\n{bot}"),
        Err(e) => e.problems,
    }
}

fn assert_problem(problems: &[String], key: &str, words: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.contains(key) && p.contains(words)),
        "no problem naming `{key}` with {words:?}: {problems:#?}"
    );
}

#[actix_rt::test]
async fn backends_are_validated_with_their_key_paths() {
    let two = r#"
[[bots.m.backends]]
provider = "chatbase"
chatbot_id = "abc"
[[bots.m.backends]]
provider = "chatling"
chatbot_id = 123
"#;
    let config = chatgate::config::from_toml_str(&format!("{VALID_BASE}{two}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let bot = &config.bots["m"];
    let backends: Vec<(&str, &str)> = bot
        .backends
        .iter()
        .map(|b| (b.provider.as_str(), b.chatbot_id.as_str()))
        .collect();
    assert_eq!(backends, [("chatbase", "abc"), ("chatling", "123")]);

    let both = r#"
[bots.m]
provider = "chatbase"
chatbot_id = "abc"
[[bots.m.backends]]
provider = "chatling"
chatbot_id = "1"
"#;
    assert_problem(&config_problems(both), "`bots.m`", "not both");

    assert_problem(
        &config_problems("[bots.m]\nbackends = []\n"),
        "`bots.m`",
        "at least one backend",
    );

    let unknown = r#"
[[bots.m.backends]]
provider = "chatbase"
chatbot_id = "abc"
[[bots.m.backends]]
provider = "nope"
chatbot_id = "1"
"#;
    assert_problem(
        &config_problems(unknown),
        "`bots.m.backends[1].provider`",
        "`nope`",
    );

    let twice = r#"
[[bots.m.backends]]
provider = "chatbase"
chatbot_id = "abc"
[[bots.m.backends]]
provider = "chatbase"
chatbot_id = "abc"
"#;
    assert_problem(&config_problems(twice), "`bots.m.backends[1]`", "twice");
}
