//! Vendor text is kept as the vendor escaped it when that is already how the
//! answer writes it (`JsonText`), and read as serde_json reads a `String`
//! otherwise. Neither may show: on every adapter and every path (one-pass and
//! per-conversation reading, `include=raw`, a Chatling or Chatbase v2 get),
//!
//! * any spelling of the same vendor JSON (every string, keys included, with
//!   any mix of raw characters, short escapes, `\/`, lowercase and uppercase
//!   `\u` escapes and surrogate pairs) gives the same answer bytes, and
//! * a string serde_json refuses (lone surrogates, raw control characters,
//!   bad escapes, bytes that are not UTF-8, a value that is not a string)
//!   fails with the very error it always did: the expectations below were
//!   recorded from the code before `JsonText` and pass on it unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use chatgate_providers::{adapter, json, Conversation, Dialect, ProviderKind, UpstreamRequest};
use proptest::prelude::*;
use serde_json::Value;

use common::*;

/// One way to reach the normalized model from vendor bodies.
#[derive(Debug, Clone, Copy)]
struct Subject {
    name: &'static str,
    kind: ProviderKind,
    dialect: Dialect,
    vendor_id: &'static str,
    flow: Flow,
}

#[derive(Debug, Clone, Copy)]
enum Flow {
    /// A list of 10 answered by one page.
    List {
        fixture: &'static str,
        include_raw: bool,
    },
    /// A get of one conversation: the conversation's fixture, and the messages
    /// pages' fixture for vendors that page them.
    Get {
        id: &'static str,
        fixture: &'static str,
        messages: Option<&'static str>,
    },
}

const SUBJECTS: [Subject; 9] = [
    Subject {
        name: "chatbase list",
        kind: ProviderKind::Chatbase,
        dialect: Dialect::Current,
        vendor_id: "ckl123abc456",
        flow: Flow::List {
            fixture: "chatbase/conformance.json",
            include_raw: false,
        },
    },
    Subject {
        name: "chatbase list raw",
        kind: ProviderKind::Chatbase,
        dialect: Dialect::Current,
        vendor_id: "ckl123abc456",
        flow: Flow::List {
            fixture: "chatbase/conformance.json",
            include_raw: true,
        },
    },
    Subject {
        name: "chatzuri list",
        kind: ProviderKind::Chatzuri,
        dialect: Dialect::Legacy,
        vendor_id: "zuri-agent-7",
        flow: Flow::List {
            fixture: "chatzuri/conformance.json",
            include_raw: false,
        },
    },
    Subject {
        name: "chatling list",
        kind: ProviderKind::Chatling,
        dialect: Dialect::Current,
        vendor_id: "chatling-bot-42",
        flow: Flow::List {
            fixture: "chatling/conformance_list.json",
            include_raw: false,
        },
    },
    Subject {
        name: "chatling list raw",
        kind: ProviderKind::Chatling,
        dialect: Dialect::Current,
        vendor_id: "chatling-bot-42",
        flow: Flow::List {
            fixture: "chatling/conformance_list.json",
            include_raw: true,
        },
    },
    Subject {
        name: "chatling get",
        kind: ProviderKind::Chatling,
        dialect: Dialect::Current,
        vendor_id: "chatling-bot-42",
        flow: Flow::Get {
            id: "1002",
            fixture: "chatling/conformance_retrieve_1002.json",
            messages: Some("chatling/conformance_messages_1002.json"),
        },
    },
    Subject {
        name: "chatbase_v2 list",
        kind: ProviderKind::ChatbaseV2,
        dialect: Dialect::Current,
        vendor_id: "5QHA6VB-DIAbBhxwqxfdi",
        flow: Flow::List {
            fixture: "chatbase_v2/conformance.json",
            include_raw: false,
        },
    },
    Subject {
        name: "chatbase_v2 list raw",
        kind: ProviderKind::ChatbaseV2,
        dialect: Dialect::Current,
        vendor_id: "5QHA6VB-DIAbBhxwqxfdi",
        flow: Flow::List {
            fixture: "chatbase_v2/conformance.json",
            include_raw: true,
        },
    },
    Subject {
        name: "chatbase_v2 get",
        kind: ProviderKind::ChatbaseV2,
        dialect: Dialect::Current,
        vendor_id: "5QHA6VB-DIAbBhxwqxfdi",
        flow: Flow::Get {
            id: "1002",
            fixture: "chatbase_v2/conformance_get_1002.json",
            messages: None,
        },
    },
];

/// Chatling's documented get, whose messages cite sources (read from `data`
/// without a `Value`): spelled any way, it reads alike too.
const CHATLING_SOURCES: Subject = Subject {
    name: "chatling get with sources",
    kind: ProviderKind::Chatling,
    dialect: Dialect::Current,
    vendor_id: "chatling-bot-42",
    flow: Flow::Get {
        id: "8977617953",
        fixture: "chatling/retrieve_conversation.json",
        messages: Some("chatling/messages_of_retrieve_example.json"),
    },
};

/// The text every subject's fixtures hold exactly once, as a message's text:
/// the place where a case puts its own string.
const MARKED: &str = "\"Hello! How can I help?\"";

/// What a caller would get: the answer's bytes (without `raw`, which is the
/// vendor's own spelling by design), or the error.
fn outcome(s: &Subject, edit: &dyn Fn(&[u8]) -> Vec<u8>) -> Result<String, String> {
    let a = adapter(s.kind, &options(s.dialect, 50));
    let serve = |name: &str| ok(edit(&fixture(name)));
    let written = |conversations: &mut [Conversation]| {
        for c in conversations.iter_mut() {
            c.raw = None;
        }
        let mut out = Vec::new();
        json::conversations(&mut out, conversations);
        String::from_utf8(out).unwrap()
    };
    match s.flow {
        Flow::List {
            fixture,
            include_raw,
        } => {
            let mut q = query(1, 10);
            q.include_raw = include_raw;
            let mut op = a.list(target(s.vendor_id), &q, None);
            let (result, _) = one_call(op.as_mut(), serve(fixture));
            result
                .map(|r| written(&mut r.page.conversations.clone()))
                .map_err(|e| format!("{e:?}"))
        }
        Flow::Get {
            id,
            fixture,
            messages,
        } => {
            let mut op = a.get(target(s.vendor_id), id, true).unwrap();
            let (result, _) = drive(op.as_mut(), |r: &UpstreamRequest| {
                match (r.path.ends_with("/messages"), messages) {
                    (true, Some(m)) => serve(m),
                    (true, None) => panic!("{}: asked for messages", s.name),
                    (false, _) => serve(fixture),
                }
            });
            result
                .map(|c| written(&mut [c]))
                .map_err(|e| format!("{e:?}"))
        }
    }
}

/// The fixture with its marked text replaced by `json`.
fn marked_as(json: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |body: &[u8]| {
        let text = String::from_utf8(body.to_vec()).unwrap();
        let Some(at) = text.find(MARKED) else {
            return body.to_vec();
        };
        let mut out = text.as_bytes()[..at].to_vec();
        out.extend_from_slice(json);
        out.extend_from_slice(&text.as_bytes()[at + MARKED.len()..]);
        out
    }
}

/// A tiny deterministic generator, so one `u64` from proptest picks every
/// spelling of a body.
struct Spellings(u64);

impl Spellings {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// `c` as a `\u` escape (a surrogate pair beyond the BMP), in either case.
fn unicode_escape(c: char, upper: bool) -> String {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units)
        .iter()
        .map(|u| {
            if upper {
                format!("\\u{u:04X}")
            } else {
                format!("\\u{u:04x}")
            }
        })
        .collect()
}

/// `text` as a JSON string, each character spelled one of the ways JSON
/// allows, picked by `pick`.
fn spelled(text: &str, pick: &mut Spellings) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let raw_allowed = !matches!(c, '"' | '\\' | '\0'..='\u{1f}');
        match pick.below(4) {
            0 if raw_allowed => out.push(c),
            1 if short.is_some() => out.push_str(short.unwrap()),
            2 => out.push_str(&unicode_escape(c, false)),
            3 => out.push_str(&unicode_escape(c, true)),
            // serde_json's own spelling.
            _ => {
                let json = serde_json::to_string(&c.to_string()).unwrap();
                out.push_str(&json[1..json.len() - 1]);
            }
        }
    }
    out.push('"');
    out
}

/// `value` as compact JSON, every string (keys too) spelled by `pick`.
fn spelled_json(value: &Value, pick: &mut Spellings) -> String {
    match value {
        Value::String(s) => spelled(s, pick),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| spelled_json(v, pick)).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", spelled(k, pick), spelled_json(v, pick)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        other => other.to_string(),
    }
}

/// `value` with every message text (`content`, `text`) replaced, in turn, by
/// one of `texts`.
fn with_texts(value: &mut Value, texts: &[String], next: &mut usize) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if matches!(k.as_str(), "content" | "text") && v.is_string() && !texts.is_empty() {
                    *v = Value::String(texts[*next % texts.len()].clone());
                    *next += 1;
                } else {
                    with_texts(v, texts, next);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| with_texts(v, texts, next)),
        _ => {}
    }
}

/// Text rich in everything that is escaped, or could be spelled another way.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\/\n\r\t\u{8}\u{c}\u{0}-\u{1f}\u{7f}a-z é€😊\u{2028}\u{fffd}]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_spelling_of_the_same_vendor_json_gives_the_same_answer(
        texts in proptest::collection::vec(tricky_text(), 1..6),
        seed in any::<u64>(),
    ) {
        let texts = &texts;
        for s in SUBJECTS.iter().chain([&CHATLING_SOURCES]) {
            let rewrite = |canonical: bool| {
                move |body: &[u8]| {
                    let mut value: Value = serde_json::from_slice(body).unwrap();
                    with_texts(&mut value, texts, &mut 0);
                    if canonical {
                        serde_json::to_vec(&value).unwrap()
                    } else {
                        spelled_json(&value, &mut Spellings(seed)).into_bytes()
                    }
                }
            };
            let expected = outcome(s, &rewrite(true));
            prop_assert!(expected.is_ok(), "{}: {:?}", s.name, expected);
            prop_assert_eq!(outcome(s, &rewrite(false)), expected, "{}", s.name);
        }
    }
}

#[test]
fn the_same_text_spelled_otherwise_gives_the_same_answer() {
    for (spelling, text) in [
        (r#""\/path\/to""#, "/path/to"),
        (r#""caf\u00e9 caf\u00E9""#, "café café"),
        (r#""\uD83D\uDE00 \ud83d\ude00""#, "😀 😀"),
        (r#""\u0022\u005C\u000A\u000a\u0009""#, "\"\\\n\n\t"),
        (r#""\u001F\u001f\u007f\u0000""#, "\u{1f}\u{1f}\u{7f}\u{0}"),
        (r#""\u0041\u00410""#, "AA0"),
    ] {
        let canonical = serde_json::to_vec(text).unwrap();
        for s in &SUBJECTS {
            assert_eq!(
                outcome(s, &marked_as(spelling.as_bytes())),
                outcome(s, &marked_as(&canonical)),
                "{}: {spelling}",
                s.name
            );
        }
    }
}

/// The marked text replaced by each of these fails as it always did.
const MALFORMED: [&[u8]; 12] = [
    br#""\uD800""#,
    br#""x\udc00""#,
    br#""\ud800\u0041""#,
    br#""\ud83dx""#,
    b"\"a\x01b\"",
    br#""\x""#,
    b"\"caf\xe9\"",
    b"5",
    b"null",
    b"[\"a\"]",
    b"{\"a\":\"b\"}",
    b"true",
];

#[test]
fn strings_serde_json_refuses_fail_as_they_always_did() {
    let mut got = String::new();
    for s in &SUBJECTS {
        for case in MALFORMED {
            let result = outcome(s, &marked_as(case));
            got.push_str(&format!(
                "{} {}: {}\n",
                s.name,
                case.escape_ascii(),
                match result {
                    Ok(answer) => format!("ok, texts {:?}", texts_of(&answer)),
                    Err(e) => e,
                }
            ));
        }
    }
    if let Ok(path) = std::env::var("ESCAPES_RECORD") {
        std::fs::write(path, &got).unwrap();
    }
    assert_eq!(got, EXPECTED_MALFORMED);
}

/// Every message text of an answer, in order.
fn texts_of(answer: &str) -> Vec<String> {
    let answer: Value = serde_json::from_str(answer).unwrap();
    answer
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap().clone())
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

/// Recorded (`ESCAPES_RECORD=FILE`) from the code before `JsonText`, where it
/// passes too. Chatling's `text` may be `null`; Chatbase v2 checks a text
/// part's `text` itself.
const EXPECTED_MALFORMED: &str = r##"chatbase list \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 49 column 29" }
chatbase list \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 49 column 29" }
chatbase list \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 49 column 34" }
chatbase list \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 49 column 29" }
chatbase list \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 49 column 24" }
chatbase list \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 49 column 24" }
chatbase list \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 49 column 26" }
chatbase list 5: InvalidBody { status: 200, reason: "invalid type: integer `5`, expected a string at line 49 column 22" }
chatbase list null: InvalidBody { status: 200, reason: "invalid type: null, expected a string at line 49 column 25" }
chatbase list [\"a\"]: InvalidBody { status: 200, reason: "invalid type: sequence, expected a string at line 49 column 21" }
chatbase list {\"a\":\"b\"}: InvalidBody { status: 200, reason: "invalid type: map, expected a string at line 49 column 21" }
chatbase list true: InvalidBody { status: 200, reason: "invalid type: boolean `true`, expected a string at line 49 column 25" }
chatbase list raw \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 29" }
chatbase list raw \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 29" }
chatbase list raw \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 34" }
chatbase list raw \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 29" }
chatbase list raw \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 49 column 23" }
chatbase list raw \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 49 column 24" }
chatbase list raw \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 49 column 26" }
chatbase list raw 5: InvalidBody { status: 200, reason: "invalid type: integer `5`, expected a string at line 11 column 22" }
chatbase list raw null: InvalidBody { status: 200, reason: "invalid type: null, expected a string at line 11 column 25" }
chatbase list raw [\"a\"]: InvalidBody { status: 200, reason: "invalid type: sequence, expected a string at line 11 column 21" }
chatbase list raw {\"a\":\"b\"}: InvalidBody { status: 200, reason: "invalid type: map, expected a string at line 11 column 21" }
chatbase list raw true: InvalidBody { status: 200, reason: "invalid type: boolean `true`, expected a string at line 11 column 25" }
chatzuri list \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 49 column 29" }
chatzuri list \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 49 column 29" }
chatzuri list \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 49 column 34" }
chatzuri list \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 49 column 29" }
chatzuri list \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 49 column 24" }
chatzuri list \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 49 column 24" }
chatzuri list \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 49 column 26" }
chatzuri list 5: InvalidBody { status: 200, reason: "invalid type: integer `5`, expected a string at line 49 column 22" }
chatzuri list null: InvalidBody { status: 200, reason: "invalid type: null, expected a string at line 49 column 25" }
chatzuri list [\"a\"]: InvalidBody { status: 200, reason: "invalid type: sequence, expected a string at line 49 column 21" }
chatzuri list {\"a\":\"b\"}: InvalidBody { status: 200, reason: "invalid type: map, expected a string at line 49 column 21" }
chatzuri list true: InvalidBody { status: 200, reason: "invalid type: boolean `true`, expected a string at line 49 column 25" }
chatling list \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 14 column 40" }
chatling list \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 14 column 40" }
chatling list \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 14 column 45" }
chatling list \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 14 column 40" }
chatling list \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 23 column 34" }
chatling list \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 23 column 35" }
chatling list \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 23 column 37" }
chatling list 5: InvalidBody { status: 200, reason: "invalid type: integer `5`, expected a string at line 14 column 33" }
chatling list null: ok, texts ["Hi", "", "This is Sam, taking over.", "Where is my order?", "It ships tomorrow.", "Conversation started", "Is anyone there?"]
chatling list [\"a\"]: InvalidBody { status: 200, reason: "invalid type: sequence, expected a string at line 14 column 32" }
chatling list {\"a\":\"b\"}: InvalidBody { status: 200, reason: "invalid type: map, expected a string at line 14 column 32" }
chatling list true: InvalidBody { status: 200, reason: "invalid type: boolean `true`, expected a string at line 14 column 36" }
chatling list raw \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 14 column 40" }
chatling list raw \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 14 column 40" }
chatling list raw \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 14 column 45" }
chatling list raw \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 14 column 40" }
chatling list raw \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 23 column 34" }
chatling list raw \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 23 column 35" }
chatling list raw \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 23 column 37" }
chatling list raw 5: InvalidBody { status: 200, reason: "invalid type: integer `5`, expected a string at line 14 column 33" }
chatling list raw null: ok, texts ["Hi", "", "This is Sam, taking over.", "Where is my order?", "It ships tomorrow.", "Conversation started", "Is anyone there?"]
chatling list raw [\"a\"]: InvalidBody { status: 200, reason: "invalid type: sequence, expected a string at line 14 column 32" }
chatling list raw {\"a\":\"b\"}: InvalidBody { status: 200, reason: "invalid type: map, expected a string at line 14 column 32" }
chatling list raw true: InvalidBody { status: 200, reason: "invalid type: boolean `true`, expected a string at line 14 column 36" }
chatling get \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 14 column 32" }
chatling get \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 14 column 32" }
chatling get \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 14 column 37" }
chatling get \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 14 column 32" }
chatling get \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 16 column 26" }
chatling get \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 16 column 27" }
chatling get \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 16 column 29" }
chatling get 5: InvalidBody { status: 200, reason: "invalid type: integer `5`, expected a string at line 14 column 25" }
chatling get null: ok, texts ["Hi", "", "This is Sam, taking over."]
chatling get [\"a\"]: InvalidBody { status: 200, reason: "invalid type: sequence, expected a string at line 14 column 24" }
chatling get {\"a\":\"b\"}: InvalidBody { status: 200, reason: "invalid type: map, expected a string at line 14 column 24" }
chatling get true: InvalidBody { status: 200, reason: "invalid type: boolean `true`, expected a string at line 14 column 28" }
chatbase_v2 list \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 91" }
chatbase_v2 list \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 91" }
chatbase_v2 list \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 96" }
chatbase_v2 list \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 91" }
chatbase_v2 list \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 13 column 85" }
chatbase_v2 list \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 13 column 86" }
chatbase_v2 list \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 13 column 88" }
chatbase_v2 list 5: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list null: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list [\"a\"]: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list {\"a\":\"b\"}: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list true: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list raw \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 91" }
chatbase_v2 list raw \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 91" }
chatbase_v2 list raw \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 96" }
chatbase_v2 list raw \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 91" }
chatbase_v2 list raw \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 13 column 85" }
chatbase_v2 list raw \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 13 column 86" }
chatbase_v2 list raw \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 13 column 88" }
chatbase_v2 list raw 5: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list raw null: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list raw [\"a\"]: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list raw {\"a\":\"b\"}: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 list raw true: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 get \"\\uD800\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 91" }
chatbase_v2 get \"x\\udc00\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 91" }
chatbase_v2 get \"\\ud800\\u0041\": InvalidBody { status: 200, reason: "lone leading surrogate in hex escape at line 11 column 96" }
chatbase_v2 get \"\\ud83dx\": InvalidBody { status: 200, reason: "unexpected end of hex escape at line 11 column 91" }
chatbase_v2 get \"a\x01b\": InvalidBody { status: 200, reason: "control character (\\u0000-\\u001F) found while parsing a string at line 13 column 85" }
chatbase_v2 get \"\\x\": InvalidBody { status: 200, reason: "invalid escape at line 13 column 86" }
chatbase_v2 get \"caf\xe9\": InvalidBody { status: 200, reason: "invalid unicode code point at line 13 column 88" }
chatbase_v2 get 5: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 get null: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 get [\"a\"]: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 get {\"a\":\"b\"}: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
chatbase_v2 get true: InvalidBody { status: 200, reason: "a `text` part without a string `text`" }
"##;
