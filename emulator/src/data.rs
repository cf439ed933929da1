//! The deterministic data set: the same seed always gives the same conversations.
//!
//! A tiny splitmix64 generator drives every choice (no `rand`: the data must not change
//! when a dependency does). The awkward cases the gateway must survive (fractional
//! seconds, non-UTC offsets, missing `updated_at`/`customer`/`source`, lowercase source
//! spellings, equal timestamps, empty and long Chatling conversations) are handed out
//! with fixed quotas in seeded order, so every seed contains each of them a known number
//! of times; only *which* conversations get them depends on the seed.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

use super::{
    Vendor, CHATBASE_BOT, CHATBASE_EMPTY_BOT, CHATBASE_V2_BOT, CHATBASE_V2_EMPTY_BOT, CHATLING_BOT,
    CHATZURI_BOT,
};

/// One bot's generated conversations (vendor-native objects, any order).
pub(crate) struct DataSet {
    pub(crate) vendor: Vendor,
    pub(crate) bot: &'static str,
    pub(crate) conversations: Vec<Value>,
}

/// The whole seeded data set: every bot the public constants name.
pub(crate) fn generate(seed: u64) -> Vec<DataSet> {
    vec![
        DataSet {
            vendor: Vendor::Chatbase,
            bot: CHATBASE_BOT,
            conversations: list_vendor(seed, &CHATBASE),
        },
        DataSet {
            vendor: Vendor::Chatbase,
            bot: CHATBASE_EMPTY_BOT,
            conversations: Vec::new(),
        },
        DataSet {
            vendor: Vendor::Chatzuri,
            bot: CHATZURI_BOT,
            conversations: list_vendor(seed, &CHATZURI),
        },
        DataSet {
            vendor: Vendor::Chatling,
            bot: CHATLING_BOT,
            conversations: chatling(seed),
        },
        DataSet {
            vendor: Vendor::ChatbaseV2,
            bot: CHATBASE_V2_BOT,
            conversations: chatbase_v2(seed),
        },
        DataSet {
            vendor: Vendor::ChatbaseV2,
            bot: CHATBASE_V2_EMPTY_BOT,
            conversations: Vec::new(),
        },
    ]
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test data.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Fisher–Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// `n` cases: each quota'd case exactly its count, the rest `rest`, in seeded order.
fn plan<T: Copy>(rng: &mut SplitMix64, n: usize, quotas: &[(T, usize)], rest: T) -> Vec<T> {
    let mut cases: Vec<T> = Vec::with_capacity(n);
    for &(case, count) in quotas {
        cases.resize(cases.len() + count, case);
    }
    cases.truncate(n);
    cases.resize(n, rest);
    rng.shuffle(&mut cases);
    cases
}

/// 2024-01-01T00:00:00Z.
const START_2024: i64 = 1_704_067_200;
const DAY: u64 = 86_400;

/// An instant from Unix seconds and milliseconds.
fn at(secs: i64, millis: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, millis * 1_000_000)
        .expect("generated timestamps lie in 2024-2025, well inside chrono's range")
}

/// How a Chatbase/Chatzuri `created_at` is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stamp {
    /// `2024-03-05T10:11:12Z` (the documented form).
    Zulu,
    /// `2024-03-05T10:11:12.345Z`.
    Fractional,
    /// `2024-03-05T10:11:12+00:00`.
    UtcOffset,
    /// `+02:00`, at 22:00-23:59 UTC so the local date is the next day.
    PlusTwo,
    /// `-05:00`, at 00:00-04:59 UTC so the local date is the previous day.
    MinusFive,
}

fn format_stamp(t: DateTime<Utc>, stamp: Stamp) -> String {
    let with_offset = |secs: i32| {
        FixedOffset::east_opt(secs)
            .map(|tz| {
                t.with_timezone(&tz)
                    .format("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            })
            .unwrap_or_else(|| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    };
    match stamp {
        Stamp::Zulu => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Stamp::Fractional => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Stamp::UtcOffset => t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        Stamp::PlusTwo => with_offset(2 * 3600),
        Stamp::MinusFive => with_offset(-5 * 3600),
    }
}

/// A random instant in 2024 (UTC) whose time of day suits `stamp`.
fn created_in_2024(rng: &mut SplitMix64, stamp: Stamp) -> DateTime<Utc> {
    let day = rng.below(366);
    let second = match stamp {
        Stamp::PlusTwo => rng.range(22 * 3600, DAY - 1),
        Stamp::MinusFive => rng.range(0, 5 * 3600 - 1),
        Stamp::Zulu | Stamp::Fractional | Stamp::UtcOffset => rng.below(DAY),
    };
    let millis = match stamp {
        Stamp::Fractional => rng.range(1, 999) as u32,
        _ => 0,
    };
    at(START_2024 + (day * DAY + second) as i64, millis)
}

/// What a Chatbase/Chatzuri conversation's `source` looks like.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SourceCase {
    Label(&'static str),
    Empty,
    Missing,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Presence {
    Present,
    Null,
    Missing,
}

/// How one Chatbase-shaped vendor's data set is generated.
struct Profile {
    salt: u64,
    bot: &'static str,
    count: usize,
    /// The vendor's documented Title-case labels.
    labels: &'static [&'static str],
    /// Other spellings of the same labels the vendor documents (Chatbase's OpenAPI).
    lowercase: &'static [&'static str],
    /// Each Title-case label appears at least this often.
    per_label: usize,
    /// Each lowercase spelling appears exactly this often.
    per_lowercase: usize,
    empty_sources: usize,
    missing_sources: usize,
    /// Counts of Fractional, UtcOffset, PlusTwo, MinusFive stamps (the rest are Zulu).
    stamps: [usize; 4],
    updated_missing: usize,
    customer_null: usize,
    customer_missing: usize,
    /// Conversations whose messages carry the optional `id` and `type` fields.
    message_ids: usize,
}

const CHATBASE: Profile = Profile {
    salt: 0xC4A7_BA5E_0000_0001,
    bot: CHATBASE_BOT,
    count: 137,
    labels: &[
        "API",
        "Chatbase site",
        "Instagram",
        "Messenger",
        "Slack",
        "Unspecified",
        "WhatsApp",
        "Playground",
        "Action preview",
        "Widget or Iframe",
    ],
    lowercase: &[
        "api",
        "website",
        "whatsapp",
        "slack",
        "messenger",
        "instagram",
    ],
    per_label: 3,
    per_lowercase: 2,
    empty_sources: 4,
    missing_sources: 2,
    stamps: [12, 8, 6, 5],
    updated_missing: 10,
    customer_null: 8,
    customer_missing: 6,
    message_ids: 12,
};

const CHATZURI: Profile = Profile {
    salt: 0xC4A7_2021_0000_0002,
    bot: CHATZURI_BOT,
    count: 64,
    labels: &[
        "API",
        "Chatzuri site",
        "Instagram",
        "Messenger",
        "Slack",
        "Unspecified",
        "WhatsApp",
        "Widget or Iframe",
    ],
    lowercase: &[],
    per_label: 3,
    per_lowercase: 0,
    empty_sources: 2,
    missing_sources: 1,
    stamps: [6, 4, 3, 3],
    updated_missing: 5,
    customer_null: 4,
    customer_missing: 3,
    message_ids: 6,
};

const TOPICS: &[&str] = &[
    "order",
    "invoice",
    "password",
    "subscription",
    "refund",
    "shipping address",
    "API key",
    "account email",
    "delivery date",
    "billing plan",
    "team seats",
    "data export",
];

const USER_OPENERS: &[&str] = &[
    "Hi, how do I change my {t}?",
    "Where can I find my {t}?",
    "Hello! I have a question about my {t}.",
    "My {t} looks wrong, can you check?",
    "Can I update the {t} after checkout?",
    "Is there a way to reset my {t}?",
    "hey, quick question about the {t}",
];

const USER_FOLLOWUPS: &[&str] = &[
    "Thanks, that worked.",
    "And how long does that take?",
    "I still can't see it.",
    "Can I do the same for the {t} of my team?",
    "Great, thank you!",
    "What if I'm on the free plan?",
    "Ok. Is there an API for that?",
];

const ANSWERS: &[&str] = &[
    "You can change your {t} from Settings, then Account. Anything else I can help with?",
    "Sure! Your {t} is listed on the Billing page. Would you like a direct link?",
    "I'm sorry about that. I've opened a ticket about your {t}; our team replies within one business day.",
    "Yes, the {t} can be updated until the order ships.",
    "To reset your {t}, use the link on the sign-in page and follow the email we send you.",
    "Good question! The {t} is described in our help center under Getting started.",
];

const FIRST_NAMES: &[&str] = &[
    "ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hugo", "ines", "jon", "kemi", "liam",
];
const LAST_NAMES: &[&str] = &[
    "silva", "okafor", "martin", "kim", "rossi", "nguyen", "schmidt", "haddad",
];

fn text(rng: &mut SplitMix64, templates: &[&str], topic: &str) -> String {
    rng.pick(templates).replace("{t}", topic)
}

fn customer(rng: &mut SplitMix64) -> String {
    if rng.chance(60) {
        format!(
            "{}.{}@example.com",
            rng.pick(FIRST_NAMES),
            rng.pick(LAST_NAMES)
        )
    } else {
        format!("user_{:05}", rng.below(100_000))
    }
}

/// Fresh ids until one is new, so ids are unique whatever the seed.
fn unique(seen: &mut HashSet<String>, mut make: impl FnMut() -> String) -> String {
    loop {
        let id = make();
        if seen.insert(id.clone()) {
            return id;
        }
    }
}

/// The `source` plan: every Title-case label `per_label` times, every other spelling
/// `per_lowercase` times, the empty/missing quotas, the rest random Title-case labels.
fn source_plan(rng: &mut SplitMix64, p: &Profile) -> Vec<SourceCase> {
    let mut cases: Vec<SourceCase> = Vec::with_capacity(p.count);
    for label in p.labels {
        cases.resize(cases.len() + p.per_label, SourceCase::Label(label));
    }
    for label in p.lowercase {
        cases.resize(cases.len() + p.per_lowercase, SourceCase::Label(label));
    }
    cases.resize(cases.len() + p.empty_sources, SourceCase::Empty);
    cases.resize(cases.len() + p.missing_sources, SourceCase::Missing);
    cases.truncate(p.count);
    while cases.len() < p.count {
        cases.push(SourceCase::Label(rng.pick(p.labels)));
    }
    rng.shuffle(&mut cases);
    cases
}

/// Chatbase v1 / Chatzuri conversations (same documented shape).
fn list_vendor(seed: u64, p: &Profile) -> Vec<Value> {
    let mut rng = SplitMix64::new(seed ^ p.salt);
    let n = p.count;
    let stamps = plan(
        &mut rng,
        n,
        &[
            (Stamp::Fractional, p.stamps[0]),
            (Stamp::UtcOffset, p.stamps[1]),
            (Stamp::PlusTwo, p.stamps[2]),
            (Stamp::MinusFive, p.stamps[3]),
        ],
        Stamp::Zulu,
    );
    let updated = plan(&mut rng, n, &[(false, p.updated_missing)], true);
    let customers = plan(
        &mut rng,
        n,
        &[
            (Presence::Null, p.customer_null),
            (Presence::Missing, p.customer_missing),
        ],
        Presence::Present,
    );
    let message_ids = plan(&mut rng, n, &[(true, p.message_ids)], false);
    let sources = source_plan(&mut rng, p);
    let mut seen = HashSet::new();

    (0..n)
        .map(|i| {
            let id = unique(&mut seen, || format!("conv_{:016x}", rng.next_u64()));
            let created = created_in_2024(&mut rng, stamps[i]);
            let topic = rng.pick(TOPICS);
            let count = rng.range(2, 8) as usize;
            let messages: Vec<Value> = (0..count)
                .map(|m| {
                    let (role, content) = match (m, m % 2) {
                        (0, _) => ("user", text(&mut rng, USER_OPENERS, topic)),
                        (_, 0) => ("user", text(&mut rng, USER_FOLLOWUPS, topic)),
                        _ => ("assistant", text(&mut rng, ANSWERS, topic)),
                    };
                    let mut msg = Map::new();
                    if message_ids[i] {
                        msg.insert(
                            "id".into(),
                            json!(format!("msg_{:012x}", rng.next_u64() >> 16)),
                        );
                    }
                    msg.insert("role".into(), json!(role));
                    msg.insert("content".into(), json!(content));
                    if message_ids[i] {
                        msg.insert("type".into(), json!("text"));
                    }
                    Value::Object(msg)
                })
                .collect();
            let duration = count as i64 * rng.range(20, 240) as i64;

            let mut conv = Map::new();
            conv.insert("id".into(), json!(id));
            conv.insert("chatbot_id".into(), json!(p.bot));
            conv.insert("created_at".into(), json!(format_stamp(created, stamps[i])));
            if updated[i] {
                let t = created + chrono::Duration::seconds(duration);
                conv.insert("updated_at".into(), json!(format_stamp(t, Stamp::Zulu)));
            }
            match customers[i] {
                Presence::Present => {
                    conv.insert("customer".into(), json!(customer(&mut rng)));
                }
                Presence::Null => {
                    conv.insert("customer".into(), Value::Null);
                }
                Presence::Missing => {}
            }
            match sources[i] {
                SourceCase::Label(label) => {
                    conv.insert("source".into(), json!(label));
                }
                SourceCase::Empty => {
                    conv.insert("source".into(), json!(""));
                }
                SourceCase::Missing => {}
            }
            conv.insert("messages".into(), Value::Array(messages));
            Value::Object(conv)
        })
        .collect()
}

/// How many messages a Chatling conversation has, and how it ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// 1-3 user/bot turns.
    Normal,
    /// No messages at all.
    Empty,
    /// 16 turns: 32 messages, three pages of 15.
    Long,
    /// 8 turns and a trailing question: 17 messages, two pages of 15.
    OverOnePage,
    /// A single unanswered user message.
    Unanswered,
    /// Turns, then a `system` note and a human `agent` answer (a takeover); the note has
    /// the same timestamp as the message before it.
    Takeover,
    /// Turns, then a `system` note.
    SystemNote,
}

/// Messages a long Chatling conversation has (three pages at the default 15).
pub(crate) const CHATLING_LONG_MESSAGES: usize = 32;
/// Messages of the conversation that needs exactly two pages at the default 15.
pub(crate) const CHATLING_TWO_PAGE_MESSAGES: usize = 17;

const DOC_PAGES: &[(&str, &str)] = &[
    (
        "Getting started - Help Center",
        "https://help.example.com/getting-started",
    ),
    (
        "Billing and invoices - Help Center",
        "https://help.example.com/billing",
    ),
    (
        "Reset your password - Help Center",
        "https://help.example.com/account/password",
    ),
    (
        "Shipping policy - Example Store",
        "https://www.example.com/policies/shipping",
    ),
    (
        "Refund policy - Example Store",
        "https://www.example.com/policies/refunds",
    ),
    (
        "API reference - Developers",
        "https://developers.example.com/api",
    ),
];

const AGENTS: &[&str] = &["Sam", "Priya", "Tomás", "Aiko"];

fn chatling_stamp(secs: i64) -> String {
    at(secs, 0).format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

fn bot_message(rng: &mut SplitMix64, topic: &str, secs: i64) -> Value {
    let sources: Vec<Value> = if rng.chance(30) {
        Vec::new()
    } else {
        let mut pages = DOC_PAGES.to_vec();
        rng.shuffle(&mut pages);
        let n = rng.range(1, 3) as usize;
        pages
            .iter()
            .take(n)
            .map(|(title, url)| json!({"type": "webpage", "title": title, "url": url}))
            .collect()
    };
    json!({
        "text": text(rng, ANSWERS, topic),
        "role": "bot",
        "is_ai_kb_response": true,
        "data": {"helpful_value": null, "sources": sources},
        "created_at": chatling_stamp(secs),
    })
}

fn plain_message(role: &str, text: String, secs: i64) -> Value {
    json!({"text": text, "role": role, "created_at": chatling_stamp(secs)})
}

/// Chatling messages for one conversation, newest first (as Chatling stores them).
fn chatling_messages(rng: &mut SplitMix64, shape: Shape, created: i64) -> Vec<Value> {
    let topic = rng.pick(TOPICS);
    let turns = match shape {
        Shape::Empty | Shape::Unanswered => 0,
        Shape::Long => CHATLING_LONG_MESSAGES / 2,
        Shape::OverOnePage => (CHATLING_TWO_PAGE_MESSAGES - 1) / 2,
        Shape::Normal => rng.range(1, 3) as usize,
        Shape::Takeover | Shape::SystemNote => rng.range(1, 2) as usize,
    };
    let mut t = created;
    let mut out = Vec::new();
    for turn in 0..turns {
        if turn > 0 {
            t += rng.range(15, 900) as i64;
        }
        let templates = if turn == 0 {
            USER_OPENERS
        } else {
            USER_FOLLOWUPS
        };
        out.push(plain_message("user", text(rng, templates, topic), t));
        t += rng.range(2, 15) as i64;
        out.push(bot_message(rng, topic, t));
    }
    match shape {
        Shape::OverOnePage | Shape::Unanswered => {
            if turns > 0 {
                t += rng.range(15, 900) as i64;
            }
            let templates = if turns == 0 {
                USER_OPENERS
            } else {
                USER_FOLLOWUPS
            };
            out.push(plain_message("user", text(rng, templates, topic), t));
        }
        Shape::Takeover => {
            let note = "Transferring you to a human agent.".to_owned();
            out.push(plain_message("system", note, t));
            t += rng.range(30, 180) as i64;
            let agent = format!(
                "Hi, this is {} from the support team. Let me look into your {topic}.",
                rng.pick(AGENTS)
            );
            out.push(plain_message("agent", agent, t));
        }
        Shape::SystemNote => {
            t += rng.range(60, 600) as i64;
            out.push(plain_message(
                "system",
                "The visitor closed the chat.".to_owned(),
                t,
            ));
        }
        Shape::Normal | Shape::Empty | Shape::Long => {}
    }
    out.reverse();
    out
}

/// Chatling v2 conversations, newest first, shaped like its retrieve-conversation object.
fn chatling(seed: u64) -> Vec<Value> {
    const COUNT: usize = 83;
    const TIES: usize = 4;
    let mut rng = SplitMix64::new(seed ^ 0xC4A7_11C6_0000_0003);

    let mut created: Vec<i64> = (0..COUNT)
        .map(|_| START_2024 + rng.below(366 * DAY) as i64)
        .collect();
    created.sort_unstable_by(|a, b| b.cmp(a));
    // A few conversations share their created_at with the next older one, so stable
    // ordering is exercised; pairs (2k, 2k+1) never overlap, so order stays sorted.
    let mut pairs: Vec<usize> = (0..COUNT / 2).collect();
    rng.shuffle(&mut pairs);
    for k in pairs.into_iter().take(TIES) {
        created[2 * k + 1] = created[2 * k];
    }

    let shapes = plan(
        &mut rng,
        COUNT,
        &[
            (Shape::Empty, 1),
            (Shape::Long, 1),
            (Shape::OverOnePage, 1),
            (Shape::Unanswered, 3),
            (Shape::Takeover, 4),
            (Shape::SystemNote, 2),
        ],
        Shape::Normal,
    );
    let contacts = plan(&mut rng, COUNT, &[(false, 12)], true);
    let archived = plan(&mut rng, COUNT, &[(1, 9)], 0);
    let important = plan(&mut rng, COUNT, &[(1, 15)], 0);
    let mut seen = HashSet::new();

    (0..COUNT)
        .map(|i| {
            let id = unique(&mut seen, || {
                (1_000_000_000 + rng.below(9_000_000_000)).to_string()
            });
            let contact = if contacts[i] {
                let (a, b) = (rng.next_u64(), rng.next_u64());
                json!(format!(
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xffff,
                    b >> 48,
                    b & 0xffff_ffff_ffff
                ))
            } else {
                Value::Null
            };
            let messages = chatling_messages(&mut rng, shapes[i], created[i]);
            json!({
                "id": id,
                "contact_id": contact,
                "archived": archived[i],
                "important": important[i],
                "created_at": chatling_stamp(created[i]),
                "messages": messages,
            })
        })
        .collect()
}

/// The export's `source` values beyond the labels Chatbase v1 documents.
pub(crate) const CHATBASE_V2_ONLY_LABELS: &[&str] = &[
    "Salesforce",
    "Zendesk",
    "Zendesk Messaging",
    "Qna preview",
    "Center stage",
    "Search",
    "Iframe",
    "Email",
    "Agent page",
    "Phone",
    "Android SDK",
    "iOS SDK",
];
/// Conversations the v2 agent has per label of [`CHATBASE_V2_ONLY_LABELS`].
const CHATBASE_V2_PER_ONLY_LABEL: usize = 2;
/// Conversations taken over by a human (`status: taken_over`, a human's reply last).
pub(crate) const CHATBASE_V2_TAKEN_OVER: usize = 8;
/// Conversations with a tool call and result inside an assistant reply.
pub(crate) const CHATBASE_V2_TOOL_CALLS: usize = 12;
/// Conversations with an assistant message made of tool parts only.
pub(crate) const CHATBASE_V2_TOOL_ONLY: usize = 3;

/// What a Chatbase v2 conversation's tools look like.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tools {
    None,
    /// The first reply is text, a tool call, its result, then the answer.
    InReply,
    /// A message of tool parts alone follows the first reply.
    Alone,
}

const TOOL_NAMES: &[&str] = &[
    "lookup_order",
    "get_invoice",
    "send_reset_link",
    "open_ticket",
];

/// Unix seconds as the export writes them: an integer, or milliseconds as a fraction.
fn unix_seconds(t: DateTime<Utc>) -> Value {
    let millis = t.timestamp_millis();
    if millis % 1000 == 0 {
        json!(millis / 1000)
    } else {
        json!(millis as f64 / 1000.0)
    }
}

/// A v1 source label in the export's spelling: Title case (the OpenAPI's lowercase
/// values are v1's only), and `null` for an empty or missing one.
fn v2_label(v1: Option<&Value>) -> Value {
    let label = v1.and_then(Value::as_str).map(str::trim).unwrap_or("");
    match label {
        "" => Value::Null,
        "api" => json!("API"),
        "website" => json!("Chatbase site"),
        "whatsapp" => json!("WhatsApp"),
        "slack" => json!("Slack"),
        "messenger" => json!("Messenger"),
        "instagram" => json!("Instagram"),
        other => json!(other),
    }
}

fn tool_parts(rng: &mut SplitMix64) -> [Value; 2] {
    let name = rng.pick(TOOL_NAMES);
    let call = format!("call_{:010x}", rng.next_u64() >> 24);
    [
        json!({"type": "tool-call", "toolCallId": call, "toolName": name}),
        json!({"type": "tool-result", "toolCallId": call, "toolName": name,
               "output": {"ok": true, "reference": format!("REF-{}", rng.range(1000, 9999))}}),
    ]
}

/// One export message; assistant messages carry `feedback` and `metadata`.
fn v2_message(rng: &mut SplitMix64, role: &str, parts: Vec<Value>, secs: Value) -> Value {
    let mut m = Map::new();
    m.insert(
        "id".into(),
        json!(format!("msg_{:012x}", rng.next_u64() >> 16)),
    );
    m.insert("role".into(), json!(role));
    m.insert("parts".into(), Value::Array(parts));
    m.insert("createdAt".into(), secs);
    if role == "assistant" {
        let feedback = match rng.below(4) {
            0 => json!("positive"),
            1 => json!("negative"),
            _ => Value::Null,
        };
        m.insert("feedback".into(), feedback);
        let score = if rng.chance(20) {
            Value::Null
        } else {
            json!(rng.range(40, 99) as f64 / 100.0)
        };
        m.insert("metadata".into(), json!({ "score": score }));
    }
    Value::Object(m)
}

/// What the seeded plan decided for one Chatbase v2 conversation.
#[derive(Clone, Copy)]
struct V2Traits {
    tools: Tools,
    status: &'static str,
    titled: bool,
}

/// One export conversation from (role, text) turns starting at `created`.
fn v2_conversation(
    rng: &mut SplitMix64,
    id: &str,
    created: DateTime<Utc>,
    user_id: Value,
    source: Value,
    turns: &[(&str, String)],
    traits: V2Traits,
) -> Value {
    let V2Traits {
        tools,
        status,
        titled,
    } = traits;
    let mut t = created;
    let mut messages = Vec::new();
    let mut first_reply = true;
    for (i, (role, text)) in turns.iter().enumerate() {
        if i > 0 {
            t += chrono::Duration::seconds(rng.range(2, 240) as i64);
        }
        let mut parts = vec![json!({"type": "text", "text": text})];
        if *role == "assistant" && first_reply && tools == Tools::InReply {
            let [call, result] = tool_parts(rng);
            parts = vec![
                json!({"type": "text", "text": "Let me look that up."}),
                call,
                result,
                json!({"type": "text", "text": text}),
            ];
        }
        messages.push(v2_message(rng, role, parts, unix_seconds(t)));
        if *role == "assistant" && first_reply && tools == Tools::Alone {
            t += chrono::Duration::seconds(1);
            let parts = tool_parts(rng).to_vec();
            messages.push(v2_message(rng, "assistant", parts, unix_seconds(t)));
        }
        if *role == "assistant" {
            first_reply = false;
        }
    }
    if status == "taken_over" {
        t += chrono::Duration::seconds(rng.range(30, 180) as i64);
        let text = format!(
            "Hi, this is {} from the support team. I'm taking it from here.",
            rng.pick(AGENTS)
        );
        let parts = vec![json!({"type": "text", "text": text})];
        messages.push(v2_message(rng, "assistant", parts, unix_seconds(t)));
    }
    let title = match turns.first() {
        Some((_, text)) if titled => json!(text.chars().take(40).collect::<String>()),
        _ => Value::Null,
    };
    json!({
        "id": id,
        "title": title,
        "createdAt": unix_seconds(created),
        "updatedAt": unix_seconds(t),
        "userId": user_id,
        "source": source,
        "status": status,
        "messages": messages,
    })
}

/// Chatbase API v2's export of the agent [`CHATBASE_BOT`]: the v1 data set's 137
/// conversations (same ids, instants, customers, labels and texts) as the export
/// shapes them, with message times, some tool calls, statuses (some `taken_over`,
/// with a human's reply last) and titles, plus conversations from the channels only v2
/// labels, so every value of the export's `source` enum (and `null`) occurs.
fn chatbase_v2(seed: u64) -> Vec<Value> {
    let v1 = list_vendor(seed, &CHATBASE);
    let mut rng = SplitMix64::new(seed ^ 0xC4A7_BA5E_0000_0002);
    let extra = CHATBASE_V2_ONLY_LABELS.len() * CHATBASE_V2_PER_ONLY_LABEL;
    let n = v1.len() + extra;
    let statuses = plan(
        &mut rng,
        n,
        &[
            ("taken_over", CHATBASE_V2_TAKEN_OVER),
            ("paused", 2),
            ("ongoing", 30),
        ],
        "ended",
    );
    let tools = plan(
        &mut rng,
        n,
        &[
            (Tools::InReply, CHATBASE_V2_TOOL_CALLS),
            (Tools::Alone, CHATBASE_V2_TOOL_ONLY),
        ],
        Tools::None,
    );
    let titled = plan(&mut rng, n, &[(false, 20)], true);
    let traits = |i: usize| V2Traits {
        tools: tools[i],
        status: statuses[i],
        titled: titled[i],
    };
    let mut seen: HashSet<String> = v1
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let mut out: Vec<Value> = Vec::with_capacity(n);
    for (i, c) in v1.iter().enumerate() {
        let created = c["created_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(|| at(START_2024, 0), |t| t.with_timezone(&Utc));
        let turns: Vec<(&str, String)> = c["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let role = m["role"].as_str().unwrap_or("user");
                (role, m["content"].as_str().unwrap_or("").to_owned())
            })
            .collect();
        let user_id = c.get("customer").cloned().unwrap_or(Value::Null);
        out.push(v2_conversation(
            &mut rng,
            c["id"].as_str().unwrap_or(""),
            created,
            user_id,
            v2_label(c.get("source")),
            &turns,
            traits(i),
        ));
    }
    for (k, label) in CHATBASE_V2_ONLY_LABELS
        .iter()
        .flat_map(|l| std::iter::repeat_n(*l, CHATBASE_V2_PER_ONLY_LABEL))
        .enumerate()
    {
        let i = v1.len() + k;
        let id = unique(&mut seen, || format!("conv_{:016x}", rng.next_u64()));
        let created = created_in_2024(&mut rng, Stamp::Zulu);
        let topic = rng.pick(TOPICS);
        let turns = [
            ("user", text(&mut rng, USER_OPENERS, topic)),
            ("assistant", text(&mut rng, ANSWERS, topic)),
        ];
        let user_id = json!(customer(&mut rng));
        out.push(v2_conversation(
            &mut rng,
            &id,
            created,
            user_id,
            json!(label),
            &turns,
            traits(i),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn set(seed: u64, vendor: Vendor, bot: &str) -> Vec<Value> {
        generate(seed)
            .into_iter()
            .find(|s| s.vendor == vendor && s.bot == bot)
            .map(|s| s.conversations)
            .unwrap_or_default()
    }

    fn count(convs: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
        convs.iter().filter(|c| pred(c)).count()
    }

    fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
        v.get(key).and_then(Value::as_str).unwrap_or("")
    }

    const SEEDS: [u64; 4] = [0, 1, 42, 0xDEAD_BEEF];

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Reference values of splitmix64 seeded with 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn same_seed_gives_identical_data_and_another_seed_differs() {
        for seed in SEEDS {
            let a: Vec<Vec<Value>> = generate(seed)
                .into_iter()
                .map(|s| s.conversations)
                .collect();
            let b: Vec<Vec<Value>> = generate(seed)
                .into_iter()
                .map(|s| s.conversations)
                .collect();
            assert_eq!(a, b);
        }
        assert_ne!(
            set(1, Vendor::Chatbase, CHATBASE_BOT),
            set(2, Vendor::Chatbase, CHATBASE_BOT)
        );
    }

    #[test]
    fn data_sets_have_the_documented_sizes() {
        for seed in SEEDS {
            assert_eq!(set(seed, Vendor::Chatbase, CHATBASE_BOT).len(), 137);
            assert_eq!(set(seed, Vendor::Chatbase, CHATBASE_EMPTY_BOT).len(), 0);
            assert_eq!(set(seed, Vendor::Chatzuri, CHATZURI_BOT).len(), 64);
            assert_eq!(set(seed, Vendor::Chatling, CHATLING_BOT).len(), 83);
            assert_eq!(set(seed, Vendor::ChatbaseV2, CHATBASE_V2_BOT).len(), 161);
            assert_eq!(
                set(seed, Vendor::ChatbaseV2, CHATBASE_V2_EMPTY_BOT).len(),
                0
            );
        }
    }

    #[test]
    fn chatbase_v2_is_the_v1_agent_in_the_export_shape_plus_v2_only_channels() {
        for seed in SEEDS {
            let v1 = set(seed, Vendor::Chatbase, CHATBASE_BOT);
            let v2 = set(seed, Vendor::ChatbaseV2, CHATBASE_V2_BOT);
            for (old, new) in v1.iter().zip(&v2) {
                assert_eq!(old["id"], new["id"]);
                let instant = DateTime::parse_from_rfc3339(str_of(old, "created_at"))
                    .expect("RFC 3339")
                    .with_timezone(&Utc);
                let secs = new["createdAt"].as_f64().expect("Unix seconds");
                assert_eq!((secs * 1000.0).round() as i64, instant.timestamp_millis());
                assert_eq!(
                    old.get("customer").cloned().unwrap_or(Value::Null),
                    new["userId"]
                );
                let old_texts: Vec<&str> = old["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| str_of(m, "content"))
                    .collect();
                let new_texts: Vec<&str> = new["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|m| m["parts"].as_array().into_iter().flatten())
                    .filter(|p| p["type"] == "text")
                    .map(|p| str_of(p, "text"))
                    .collect();
                for t in old_texts {
                    assert!(new_texts.contains(&t), "{t}");
                }
            }
            let labels: HashSet<Option<&str>> = v2.iter().map(|c| c["source"].as_str()).collect();
            for label in CHATBASE.labels.iter().chain(CHATBASE_V2_ONLY_LABELS) {
                assert!(labels.contains(&Some(*label)), "{label}");
            }
            assert!(labels.contains(&None), "a null source");
            assert_eq!(labels.len(), 23, "the export's 22 labels and null");
            assert_eq!(
                count(&v2, |c| c["status"] == "taken_over"),
                CHATBASE_V2_TAKEN_OVER
            );
            let parts = |c: &Value| -> Vec<Vec<String>> {
                c["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        m["parts"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| str_of(p, "type").to_owned())
                            .collect()
                    })
                    .collect()
            };
            assert_eq!(
                count(&v2, |c| parts(c).iter().any(|p| p.len() == 4
                    && p[1] == "tool-call"
                    && p[2] == "tool-result")),
                CHATBASE_V2_TOOL_CALLS
            );
            assert_eq!(
                count(&v2, |c| parts(c)
                    .iter()
                    .any(|p| p.as_slice() == ["tool-call", "tool-result"])),
                CHATBASE_V2_TOOL_ONLY
            );
            assert!(count(&v2, |c| c["createdAt"].is_f64()) >= 12, "fractions");
        }
    }

    #[test]
    fn chatbase_data_contains_every_awkward_case_in_fixed_quotas() {
        for seed in SEEDS {
            let convs = set(seed, Vendor::Chatbase, CHATBASE_BOT);
            let created = |c: &Value| str_of(c, "created_at").to_owned();
            assert_eq!(
                count(&convs, |c| created(c).contains('.')),
                12,
                "fractional"
            );
            assert_eq!(count(&convs, |c| created(c).ends_with("+00:00")), 8);
            assert_eq!(count(&convs, |c| created(c).ends_with("+02:00")), 6);
            assert_eq!(count(&convs, |c| created(c).ends_with("-05:00")), 5);
            assert_eq!(count(&convs, |c| c.get("updated_at").is_none()), 10);
            assert_eq!(
                count(&convs, |c| c.get("customer") == Some(&Value::Null)),
                8
            );
            assert_eq!(count(&convs, |c| c.get("customer").is_none()), 6);
            assert_eq!(count(&convs, |c| c.get("source").is_none()), 2);
            assert_eq!(
                count(&convs, |c| str_of(c, "source").is_empty()
                    && c.get("source").is_some()),
                4
            );
            for lower in CHATBASE.lowercase {
                assert_eq!(
                    count(&convs, |c| str_of(c, "source") == *lower),
                    2,
                    "{lower}"
                );
            }
            for label in CHATBASE.labels {
                assert!(
                    count(&convs, |c| str_of(c, "source") == *label) >= 3,
                    "{label}"
                );
            }
            assert_eq!(
                count(&convs, |c| c["messages"][0].get("id").is_some()),
                12,
                "conversations with message ids"
            );
        }
    }

    #[test]
    fn chatbase_conversations_are_well_formed() {
        let convs = set(42, Vendor::Chatbase, CHATBASE_BOT);
        let ids: HashSet<&str> = convs.iter().map(|c| str_of(c, "id")).collect();
        assert_eq!(ids.len(), convs.len(), "ids are unique");
        let (first, last) = (
            NaiveDate::from_ymd_opt(2024, 1, 1),
            NaiveDate::from_ymd_opt(2024, 12, 31),
        );
        let mut local_date_differs = 0;
        for c in &convs {
            let id = str_of(c, "id");
            assert!(id.len() == 21 && id.starts_with("conv_"), "{id}");
            assert_eq!(str_of(c, "chatbot_id"), CHATBASE_BOT);
            let created = DateTime::parse_from_rfc3339(str_of(c, "created_at")).expect("RFC 3339");
            let utc = created.with_timezone(&Utc).date_naive();
            assert!(Some(utc) >= first && Some(utc) <= last, "{created}");
            if created.date_naive() != utc {
                local_date_differs += 1;
            }
            if let Some(updated) = c.get("updated_at").and_then(Value::as_str) {
                let updated = DateTime::parse_from_rfc3339(updated).expect("RFC 3339");
                assert!(updated > created);
            }
            let messages = c["messages"].as_array().expect("messages array");
            assert!((2..=8).contains(&messages.len()));
            for (i, m) in messages.iter().enumerate() {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                assert_eq!(str_of(m, "role"), role);
                assert!(!str_of(m, "content").is_empty());
            }
        }
        assert_eq!(
            local_date_differs, 11,
            "every non-UTC offset crosses midnight"
        );
    }

    #[test]
    fn chatzuri_uses_its_own_labels_and_bot_id() {
        let convs = set(42, Vendor::Chatzuri, CHATZURI_BOT);
        assert!(convs
            .iter()
            .all(|c| str_of(c, "chatbot_id") == CHATZURI_BOT));
        assert!(count(&convs, |c| str_of(c, "source") == "Chatzuri site") >= 3);
        assert_eq!(count(&convs, |c| str_of(c, "source") == "Chatbase site"), 0);
        assert_eq!(count(&convs, |c| str_of(c, "created_at").contains('.')), 6);
    }

    #[test]
    fn chatling_data_has_the_shapes_the_gateway_must_handle() {
        for seed in SEEDS {
            let convs = set(seed, Vendor::Chatling, CHATLING_BOT);
            let lens: Vec<usize> = convs
                .iter()
                .map(|c| c["messages"].as_array().map_or(0, Vec::len))
                .collect();
            assert_eq!(lens.iter().filter(|n| **n == 0).count(), 1, "one empty");
            assert_eq!(
                lens.iter()
                    .filter(|n| **n == CHATLING_LONG_MESSAGES)
                    .count(),
                1
            );
            assert_eq!(
                lens.iter()
                    .filter(|n| **n == CHATLING_TWO_PAGE_MESSAGES)
                    .count(),
                1
            );
            assert_eq!(count(&convs, |c| c["contact_id"].is_null()), 12);
            assert_eq!(count(&convs, |c| c["archived"] == 1), 9);
            assert_eq!(count(&convs, |c| c["important"] == 1), 15);
            let ties = convs
                .windows(2)
                .filter(|w| w[0]["created_at"] == w[1]["created_at"])
                .count();
            assert!(ties >= 4, "seed {seed}: {ties} ties");
            let roles: Vec<&str> = convs
                .iter()
                .flat_map(|c| c["messages"].as_array().into_iter().flatten())
                .map(|m| str_of(m, "role"))
                .collect();
            assert_eq!(roles.iter().filter(|r| **r == "agent").count(), 4);
            assert_eq!(roles.iter().filter(|r| **r == "system").count(), 6);
        }
    }

    #[test]
    fn chatling_conversations_are_well_formed() {
        let convs = set(42, Vendor::Chatling, CHATLING_BOT);
        let ids: HashSet<&str> = convs.iter().map(|c| str_of(c, "id")).collect();
        assert_eq!(ids.len(), 83);
        let mut empty_sources = 0;
        let mut with_sources = 0;
        for pair in convs.windows(2) {
            assert!(str_of(&pair[0], "created_at") >= str_of(&pair[1], "created_at"));
        }
        for c in &convs {
            let id = str_of(c, "id");
            assert!(
                id.len() == 10 && id.bytes().all(|b| b.is_ascii_digit()),
                "{id}"
            );
            let created = str_of(c, "created_at");
            assert!(created.ends_with("+00:00"), "{created}");
            DateTime::parse_from_rfc3339(created).expect("RFC 3339");
            if let Some(contact) = c["contact_id"].as_str() {
                assert_eq!(contact.len(), 36);
            }
            let messages = c["messages"].as_array().expect("messages array");
            for pair in messages.windows(2) {
                assert!(
                    str_of(&pair[0], "created_at") >= str_of(&pair[1], "created_at"),
                    "newest first"
                );
            }
            if let Some(oldest) = messages.last() {
                assert_eq!(
                    str_of(oldest, "created_at"),
                    created,
                    "first message opens it"
                );
                assert_eq!(str_of(oldest, "role"), "user");
            }
            for m in messages {
                assert!(str_of(m, "created_at") >= created);
                assert!(!str_of(m, "text").is_empty());
                if str_of(m, "role") == "bot" {
                    assert_eq!(m["is_ai_kb_response"], true);
                    assert!(m["data"]["helpful_value"].is_null());
                    let sources = m["data"]["sources"].as_array().expect("sources array");
                    if sources.is_empty() {
                        empty_sources += 1;
                    } else {
                        with_sources += 1;
                        assert_eq!(str_of(&sources[0], "type"), "webpage");
                        assert!(str_of(&sources[0], "url").starts_with("https://"));
                    }
                }
            }
        }
        assert!(
            empty_sources >= 3 && with_sources >= 3,
            "{empty_sources} / {with_sources}"
        );
    }
}
