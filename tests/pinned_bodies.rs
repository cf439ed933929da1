//! Pins the exact bytes of the gateway's normalized answers for large, realistic
//! vendor pages, through the real server and the emulator over HTTP, for every
//! vendor: lists (with and without `include=raw`) and the detail endpoint.
//!
//! The vendor pages are generated here, deterministically, the way real history
//! looks: assistant answers of ~300 characters with Markdown, quotes, newlines,
//! tabs, backslashes, accented and CJK text and emoji, written in the vendor's
//! JSON the way vendors write it (emoji as `\uXXXX` surrogate pairs, some accents
//! escaped and some not, some `\/`). The emulator serves them through a 200
//! "fault" carrying the page, so its own data set and behaviour stay untouched.
//!
//! A pin is the answer's length and SHA-256: any change to the normalization or
//! the serialization, however small, fails here. When a change is intended,
//! update the pins from the failure message. Each run leaves the vendor pages and
//! the answers in `target/tmp/pinned-bodies/` (for diffing a failure, or as load
//! for a benchmark).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use awc::http::Method;
use chatgate::demo::DEMO_KEY;
use chatgate_emulator::{Fault, FaultKind, Vendor};
use common::Harness;
use sha2::{Digest, Sha256};

/// Conversations on a list page: the gateway's largest page.
const PAGE: usize = 100;

/// splitmix64, so the pages never change with a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const QUESTIONS: &[&str] = &[
    "Hi! How do I change my billing plan?",
    "Can I get an invoice for last month — with my VAT number on it?",
    "It says \"payment failed\" 😕 what now?",
    "Merci ! Et pour l'export des données ?",
    "パスワードをリセットするにはどうすればいいですか？",
    "ok thanks",
    "Where's the API key? I looked under Settings/Developers but it's empty",
    "Mein Paket ist seit 5 Tagen unterwegs… wo ist es?",
    "can you explain the difference between Starter and Pro? 🤔",
    "I typed C:\\temp\\export.csv as the path and nothing happened",
];

const ANSWER_PARTS: &[&str] = &[
    "**Short answer:** yes — you can change your plan at any time from *Settings → Billing*.",
    "Here's how:\n\n1. Open **Settings**\n2. Click \"Billing\" and choose `Change plan`\n3. Confirm with your password",
    "> Note: downgrades take effect at the end of the current period; upgrades are prorated immediately.",
    "If you see the error \"card_declined\", check the card's expiry date or try another card 💳.",
    "Les factures sont envoyées à l'adresse e-mail du propriétaire du compte. Für Rückfragen: billing@example.com.",
    "See [the billing guide](https://docs.example.com/billing?tab=plans#change) for screenshots.",
    "日本語のサポートも利用できます。お気軽にお問い合わせください 🙏",
    "Tip: run `curl -H \"Authorization: Bearer <key>\" https://api.example.com/v1/plans` to list plans.",
    "Happy to help further! 😊👍",
    "| Plan | Price |\n|---|---|\n| Starter | 19 € / month |\n| Pro | 99 € / month |",
    "On Windows the file lives in C:\\Users\\you\\AppData\\Local\\Example\\config.json\t(version 2).",
    "Your order **#48213** shipped on 12/03 via DHL; tracking: `JD014600006281`.\r\nIt usually arrives in 2–4 business days 📦.",
];

const TITLES: &[&str] = &[
    "Billing plans — Help Center",
    "Invoices & VAT",
    "Réinitialiser le mot de passe",
    "API keys \"quick start\"",
];

/// A user's message.
fn question(rng: &mut Rng) -> String {
    rng.pick(QUESTIONS).to_owned()
}

/// An assistant's answer: three or four parts, ~300 characters.
fn answer(rng: &mut Rng) -> String {
    let n = 3 + rng.below(2);
    (0..n)
        .map(|_| rng.pick(ANSWER_PARTS))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Writes `s` as a JSON string the way a vendor might: emoji always as
/// surrogate-pair escapes (upper or lower case hex), other non-ASCII escaped in
/// some strings and raw in others, `/` sometimes as `\/`.
fn vendor_str(rng: &mut Rng, s: &str) -> String {
    let escape_bmp = rng.chance(40);
    let escape_slash = rng.chance(20);
    let upper = rng.chance(50);
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '/' if escape_slash => out.push_str("\\/"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c if (c as u32) > 0xFFFF => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if upper {
                        write!(out, "\\u{unit:04X}").unwrap();
                    } else {
                        write!(out, "\\u{unit:04x}").unwrap();
                    }
                }
            }
            c if !c.is_ascii() && escape_bmp => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `count` messages alternating user and assistant, starting with the user.
fn turns(rng: &mut Rng) -> Vec<(bool, String)> {
    let count = 4 + rng.below(9);
    (0..count)
        .map(|i| {
            let user = i % 2 == 0;
            (user, if user { question(rng) } else { answer(rng) })
        })
        .collect()
}

/// Seconds from 2024-01-01 of conversation `i` (newest first, some ties).
fn created(i: usize) -> i64 {
    1_704_067_200 + 30_000_000 - (i as i64 / 7 * 7) * 3_607
}

fn rfc3339(secs: i64, frac: bool, offset: bool) -> String {
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
    match (frac, offset) {
        (true, _) => format!("{}.{:03}Z", t.format("%Y-%m-%dT%H:%M:%S"), secs % 1000),
        (false, true) => (t + chrono::Duration::hours(2))
            .format("%Y-%m-%dT%H:%M:%S+02:00")
            .to_string(),
        (false, false) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

/// A Chatbase v1 / Chatzuri list page (`{"data": [...]}`).
fn v1_page(seed: u64, labels: &[&str]) -> String {
    let mut rng = Rng(seed);
    let mut conversations = Vec::new();
    for i in 0..PAGE {
        let secs = created(i);
        let messages: Vec<String> = turns(&mut rng)
            .into_iter()
            .map(|(user, text)| {
                let role = if user { "user" } else { "assistant" };
                format!(
                    r#"{{"role":"{role}","content":{}}}"#,
                    vendor_str(&mut rng, &text)
                )
            })
            .collect();
        let updated = if rng.chance(80) {
            format!("\"{}\"", rfc3339(secs + 600, false, false))
        } else {
            "null".to_owned()
        };
        let customer = if rng.chance(70) {
            vendor_str(&mut rng, &format!("José.Müller+{i}@example.com"))
        } else {
            "null".to_owned()
        };
        conversations.push(format!(
            r#"{{"id":"conv_{i:08x}","chatbot_id":"bot-1","created_at":"{}","updated_at":{updated},"customer":{customer},"source":"{}","messages":[{}]}}"#,
            rfc3339(secs, i % 5 == 1, i % 5 == 2),
            rng.pick(labels),
            messages.join(","),
        ));
    }
    format!(r#"{{"data":[{}]}}"#, conversations.join(","))
}

/// One Chatling message, as its list and messages endpoints write it.
fn chatling_message(rng: &mut Rng, user: bool, text: &str, secs: i64) -> String {
    let t = rfc3339(secs, false, false).replace('Z', "+00:00");
    if user {
        return format!(
            r#"{{"text":{},"role":"user","created_at":"{t}"}}"#,
            vendor_str(rng, text)
        );
    }
    let sources: Vec<String> = (0..rng.below(3))
        .map(|k| {
            let title = rng.pick(TITLES);
            format!(
                r#"{{"type":"webpage","title":{},"url":"https:\/\/help.example.com\/a\/{k}"}}"#,
                vendor_str(rng, title)
            )
        })
        .collect();
    format!(
        r#"{{"text":{},"role":"bot","is_ai_kb_response":true,"data":{{"helpful_value":null,"sources":[{}]}},"created_at":"{t}"}}"#,
        vendor_str(rng, text),
        sources.join(",")
    )
}

/// A Chatling conversation with its messages newest first (as Chatling lists them).
fn chatling_conversation(rng: &mut Rng, i: usize) -> String {
    let secs = created(i);
    let mut messages: Vec<String> = turns(rng)
        .into_iter()
        .enumerate()
        .map(|(k, (user, text))| chatling_message(rng, user, &text, secs + 30 * k as i64))
        .collect();
    messages.reverse();
    let id = if i % 3 == 0 {
        format!("{}", 8_977_617_953u64 + i as u64)
    } else {
        format!("\"{}\"", 8_977_617_953u64 + i as u64)
    };
    format!(
        r#"{{"id":{id},"contact_id":"qtr89df0-112d-d197-b541-{i:012}","archived":0,"important":{},"created_at":"{}","messages":[{}]}}"#,
        i % 2,
        rfc3339(secs, false, false).replace('Z', "+00:00"),
        messages.join(","),
    )
}

fn chatling_envelope(
    current: u32,
    last: u32,
    per_page: usize,
    key: &str,
    items: &[String],
) -> String {
    format!(
        r#"{{"status":"success","data":{{"pages":{{"current_page":{current},"last_page":{last},"per_page":{per_page}}},"{key}":[{}]}}}}"#,
        items.join(",")
    )
}

/// A Chatbase v2 export conversation.
fn v2_conversation(rng: &mut Rng, i: usize) -> String {
    let secs = created(i);
    let messages: Vec<String> = turns(rng)
        .into_iter()
        .enumerate()
        .map(|(k, (user, text))| {
            let at = secs + 20 * k as i64;
            let stamp = if k % 3 == 1 {
                format!("{at}.{}", 125 * (k % 8))
            } else {
                at.to_string()
            };
            let text = vendor_str(rng, &text);
            if user {
                format!(
                    r#"{{"id":"msg_{i:04}_{k:02}","role":"user","parts":[{{"type":"text","text":{text}}}],"createdAt":{stamp}}}"#
                )
            } else if k == 1 && i % 4 == 0 {
                format!(
                    r#"{{"id":"msg_{i:04}_{k:02}","role":"assistant","parts":[{{"type":"text","text":"Let me look that up."}},{{"type":"tool-call","toolCallId":"call_{i}","toolName":"lookup_order"}},{{"type":"tool-result","toolCallId":"call_{i}","toolName":"lookup_order","output":{{"ok":true}}}},{{"type":"text","text":{text}}}],"createdAt":{stamp},"feedback":null,"metadata":{{"score":0.87}}}}"#
                )
            } else {
                format!(
                    r#"{{"id":"msg_{i:04}_{k:02}","role":"assistant","parts":[{{"type":"text","text":{text}}}],"createdAt":{stamp},"feedback":"positive","metadata":{{"score":null}}}}"#
                )
            }
        })
        .collect();
    let labels = [
        "API",
        "Widget or Iframe",
        "WhatsApp",
        "Iframe",
        "Slack",
        "Qna preview",
    ];
    let source = labels[rng.below(labels.len())];
    let title = rng.pick(TITLES);
    let title = vendor_str(rng, title);
    format!(
        r#"{{"id":"conv_v2_{i:06}","title":{title},"createdAt":{secs},"updatedAt":{},"userId":"user-{i}","source":"{source}","status":"{}","messages":[{}]}}"#,
        secs + 3_600,
        if i % 9 == 0 { "taken_over" } else { "ongoing" },
        messages.join(","),
    )
}

fn v2_page(items: &[String], cursor: Option<&str>) -> String {
    let pagination = match cursor {
        Some(c) => format!(r#"{{"cursor":"{c}","hasMore":true,"total":500}}"#),
        None => r#"{"cursor":null,"hasMore":false,"total":500}"#.to_owned(),
    };
    format!(
        r#"{{"data":[{}],"pagination":{pagination}}}"#,
        items.join(",")
    )
}

/// A 200 carrying `body` for the next `times` requests to `vendor` whose path
/// contains `path` (`None`: until cleared).
fn serve(h: &Harness, vendor: Vendor, path: &str, times: Option<u32>, body: String) {
    h.state().add_fault(Fault {
        vendor: Some(vendor),
        path_contains: Some(path.to_owned()),
        times,
        kind: FaultKind::Status {
            status: 200,
            body: Some(body),
            retry_after: None,
        },
    });
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pinned-bodies");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Leaves a vendor page where a load script or a diff can find it.
fn keep_vendor_page(name: &str, body: &str) {
    std::fs::write(out_dir().join(format!("vendor-{name}.json")), body).unwrap();
}

/// Asks the gateway for `path` (bypassing its cache) and checks the answer's
/// length and SHA-256 against the pin.
async fn assert_pinned(h: &Harness, name: &str, path: &str, len: usize, sha256: &str) {
    let res = h
        .request(
            Method::GET,
            path,
            Some(DEMO_KEY),
            &[("Cache-Control", "no-cache")],
            None,
        )
        .await;
    res.ok();
    let file = out_dir().join(format!("answer-{name}.json"));
    std::fs::write(&file, &res.body).unwrap();
    let actual = hex::encode(Sha256::digest(&res.body));
    assert_eq!(
        (res.body.len(), actual.as_str()),
        (len, sha256),
        "{name}: the answer to {path} changed (written to {})",
        file.display()
    );
}

#[actix_rt::test]
async fn chatbase_v1_answers_are_byte_identical() {
    let h = Harness::start().await;
    let labels = [
        "API",
        "Widget or Iframe",
        "WhatsApp",
        "Chatbase site",
        "Playground",
        "Unspecified",
        "Email",
    ];
    let page = v1_page(1, &labels);
    keep_vendor_page("chatbase", &page);
    serve(&h, Vendor::Chatbase, "/get-conversations", None, page);
    let list = "/api/v1/get-conversations?chatbotId=support&size=100";
    assert_pinned(
        &h,
        "chatbase",
        list,
        202135,
        "05fb19502223e5eb3adf696869cd373eadd20a64c2811ddfd095e2ef4ea6144a",
    )
    .await;
    let raw = format!("{list}&include=raw");
    assert_pinned(
        &h,
        "chatbase-raw",
        &raw,
        401281,
        "1a43761d049be1c2d797a9b823eaef37cddd8bf98b115de8ec3ec9dce3116c61",
    )
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn chatzuri_answers_are_byte_identical() {
    let h = Harness::start().await;
    let labels = [
        "API",
        "Widget or Iframe",
        "Chatzuri site",
        "Instagram",
        "Slack",
        "Unspecified",
    ];
    let page = v1_page(2, &labels);
    keep_vendor_page("chatzuri", &page);
    serve(&h, Vendor::Chatzuri, "/get-conversations", None, page);
    let list = "/api/v1/get-conversations?chatbotId=sales&size=100";
    assert_pinned(
        &h,
        "chatzuri",
        list,
        221062,
        "ef1f635a1db5e445f707364ef947312d0569abc1df81f2c3c24420912ae3caa5",
    )
    .await;
    let raw = format!("{list}&include=raw");
    assert_pinned(
        &h,
        "chatzuri-raw",
        &raw,
        438574,
        "a5a688a021cbcc260b1ccb03c52552885c91e1be1f109f99c3f7a0f9c8335930",
    )
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_answers_are_byte_identical() {
    let h = Harness::start().await;
    let mut rng = Rng(3);
    let conversations: Vec<String> = (0..PAGE)
        .map(|i| chatling_conversation(&mut rng, i))
        .collect();
    let page = chatling_envelope(1, 2, PAGE, "conversations", &conversations);
    keep_vendor_page("chatling", &page);
    serve(&h, Vendor::Chatling, "/conversations", None, page);
    let list = "/api/v1/get-conversations?chatbotId=helpdesk&size=100";
    assert_pinned(
        &h,
        "chatling",
        list,
        258594,
        "00ae7cfdb7962c52eb04778915783890bb9382bc1fa968ff1f4568308ae44c35",
    )
    .await;
    let raw = format!("{list}&include=raw");
    assert_pinned(
        &h,
        "chatling-raw",
        &raw,
        547341,
        "1834b61b77ad1983f51c2e8e2672ea15dab682a5255fdbabd9a07a75f803d71b",
    )
    .await;

    // The detail endpoint: the conversation, then its messages oldest first.
    h.state().clear_faults();
    let id = "8977617954";
    let mut rng = Rng(4);
    let conversation = chatling_conversation(&mut rng, 1);
    let messages: Vec<String> = (0..40)
        .map(|k| {
            let text = if k % 2 == 0 {
                question(&mut rng)
            } else {
                answer(&mut rng)
            };
            chatling_message(&mut rng, k % 2 == 0, &text, created(1) + 45 * k)
        })
        .collect();
    serve(
        &h,
        Vendor::Chatling,
        "/messages",
        None,
        chatling_envelope(1, 1, 50, "messages", &messages),
    );
    serve(
        &h,
        Vendor::Chatling,
        &format!("/conversations/{id}"),
        None,
        format!(r#"{{"status":"success","data":{conversation}}}"#),
    );
    let detail = format!("/api/v1/conversations/{id}?chatbotId=helpdesk");
    assert_pinned(
        &h,
        "chatling-detail",
        &detail,
        12195,
        "a9fec89b92a14d2ae217e9197d56c3c19e9434d6412a96cbb2e905572cc47fd2",
    )
    .await;
    let raw = format!("{detail}&include=raw");
    assert_pinned(
        &h,
        "chatling-detail-raw",
        &raw,
        14604,
        "5ce37206900272276d4ccea6ace0c32af437af647c3e4df42949e25c5070f48a",
    )
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn chatbase_v2_answers_are_byte_identical() {
    let h = Harness::start().await;
    let mut rng = Rng(5);
    let conversations: Vec<String> = (0..PAGE).map(|i| v2_conversation(&mut rng, i)).collect();
    // Five export pages of 20, chained by cursors; the last says more follow.
    let pages: Vec<String> = conversations
        .chunks(20)
        .enumerate()
        .map(|(k, items)| v2_page(items, Some(&format!("cur_{}", k + 1))))
        .collect();
    keep_vendor_page("chatbase-v2", &pages[0]);
    let list = "/api/v1/get-conversations?chatbotId=support-v2&size=100";
    for (name, path, len, sha256) in [
        (
            "chatbase-v2",
            list.to_owned(),
            236244,
            "c05b11f1fde89659cdf7b721d8132aa6af93408521cdf646b0d9680e477f26f1",
        ),
        (
            "chatbase-v2-raw",
            format!("{list}&include=raw"),
            531370,
            "00244d127554f1ff18f6b82b4dec897228bb65175f5d3b2519bb53807cd18d0e",
        ),
    ] {
        h.state().clear_faults();
        for page in &pages {
            serve(&h, Vendor::ChatbaseV2, "/export", Some(1), page.clone());
        }
        assert_pinned(&h, name, &path, len, sha256).await;
    }

    h.state().clear_faults();
    let one = v2_conversation(&mut rng, 7);
    serve(
        &h,
        Vendor::ChatbaseV2,
        "/export",
        None,
        v2_page(&[one], None),
    );
    let detail = "/api/v1/conversations/conv_v2_000007?chatbotId=support-v2";
    assert_pinned(
        &h,
        "chatbase-v2-detail",
        detail,
        1889,
        "15eafd9046ba400a7d962ea424b37463782f3b8f08e7b0a9bcbf69fb6bea2d54",
    )
    .await;
    let raw = format!("{detail}&include=raw");
    assert_pinned(
        &h,
        "chatbase-v2-detail-raw",
        &raw,
        4160,
        "106affc1b0ecc0d9926808fdb517571c3ce8f987b94d8f1cb96df6453bb67f3a",
    )
    .await;
    h.stop().await;
}
