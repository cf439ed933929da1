//! One set of checks run on every adapter with the same history written in each
//! vendor's wire format: whatever the vendor, a caller sees conversations newest
//! first, chronological messages, three roles, RFC 3339 `Z` timestamps, the
//! provider's kind, and the bot's configured name.
#![allow(clippy::unwrap_used)]

mod common;

use chatgate_providers::{
    adapter, Conversation, Dialect, ListResult, Paging, ProviderError, ProviderKind, Role,
    UpstreamRequest,
};
use common::*;
use serde_json::Value;

struct Subject {
    kind: ProviderKind,
    dialect: Dialect,
    vendor_id: &'static str,
    list_fixture: &'static str,
    paging: Paging,
}

fn subjects() -> [Subject; 5] {
    [
        Subject {
            kind: ProviderKind::Chatbase,
            dialect: Dialect::Current,
            vendor_id: "ckl123abc456",
            list_fixture: "chatbase/conformance.json",
            paging: Paging::CallerSized,
        },
        Subject {
            kind: ProviderKind::Chatzuri,
            dialect: Dialect::Current,
            vendor_id: "zuri-agent-7",
            list_fixture: "chatzuri/conformance.json",
            paging: Paging::CallerSized,
        },
        Subject {
            kind: ProviderKind::Chatzuri,
            dialect: Dialect::Legacy,
            vendor_id: "zuri-agent-7",
            list_fixture: "chatzuri/conformance.json",
            paging: Paging::CallerSized,
        },
        Subject {
            kind: ProviderKind::Chatling,
            dialect: Dialect::Current,
            vendor_id: "chatling-bot-42",
            list_fixture: "chatling/conformance_list.json",
            paging: Paging::VendorSized,
        },
        Subject {
            kind: ProviderKind::ChatbaseV2,
            dialect: Dialect::Current,
            vendor_id: "5QHA6VB-DIAbBhxwqxfdi",
            list_fixture: "chatbase_v2/conformance.json",
            paging: Paging::Cursor,
        },
    ]
}

fn list(s: &Subject, include_raw: bool) -> ListResult {
    let a = adapter(s.kind, &options(s.dialect, 50));
    let mut q = query(1, 10);
    q.include_raw = include_raw;
    let mut op = a.list(target(s.vendor_id), &q, None);
    one_call(op.as_mut(), ok(fixture(s.list_fixture)))
        .0
        .unwrap()
}

fn assert_rfc3339_z(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {value} is not a string"));
    assert!(text.ends_with('Z'), "{what}: {text} does not end in Z");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what}: {text} is not RFC 3339: {e}"));
}

/// Every invariant of SPEC §2.2 that holds for any vendor.
fn check_conversation(kind: ProviderKind, vendor_id: &str, c: &Conversation) {
    let what = format!("{kind} {}", c.id);
    assert_eq!(c.provider, kind, "{what}");
    assert_eq!(c.chatbot_id, BOT, "{what}");
    assert_ne!(c.chatbot_id, vendor_id, "{what}");

    let json = json_of(c);
    assert_eq!(json["provider"], kind.as_str(), "{what}");
    assert_eq!(json["chatbot_id"], BOT, "{what}");
    assert_rfc3339_z(&json["created_at"], &what);
    if !json["updated_at"].is_null() {
        assert_rfc3339_z(&json["updated_at"], &what);
    }
    assert!(
        json["customer"].is_null() || json["customer"].is_string(),
        "{what}"
    );

    for (i, m) in json["messages"].as_array().unwrap().iter().enumerate() {
        let role = m["role"].as_str().unwrap();
        assert!(
            ["user", "assistant", "system"].contains(&role),
            "{what} #{i}: {role}"
        );
        if let Some(vendor_role) = m.get("vendor_role") {
            assert_eq!(
                role, "assistant",
                "{what} #{i}: an unknown role is bot-side"
            );
            assert!(!["user", "assistant", "system"].contains(&vendor_role.as_str().unwrap()));
        }
        if !m["created_at"].is_null() {
            assert_rfc3339_z(&m["created_at"], &format!("{what} #{i}"));
        }
        if let Some(sources) = m.get("sources") {
            assert!(
                !sources.as_array().unwrap().is_empty(),
                "{what} #{i}: empty sources are omitted"
            );
        }
    }
    // Chronological wherever both neighbours have a time.
    for pair in c.messages.windows(2) {
        if let (Some(a), Some(b)) = (pair[0].created_at, pair[1].created_at) {
            assert!(a <= b, "{what}: messages not chronological");
        }
    }
}

#[test]
fn every_adapter_lists_newest_first_with_the_same_conversations() {
    for s in subjects() {
        let result = list(&s, false);
        let created: Vec<_> = result
            .page
            .conversations
            .iter()
            .map(|c| c.created_at)
            .collect();
        assert!(
            created.windows(2).all(|w| w[0] >= w[1]),
            "{}: not newest first",
            s.kind
        );
        // 1004 and 1001 share a timestamp; both vendors give 1001 first.
        assert_eq!(ids(&result), ["1002", "1001", "1004", "1003"], "{}", s.kind);
        assert!(
            !result.page.has_more,
            "{}: 4 of size 10 is the last page",
            s.kind
        );
    }
}

#[test]
fn every_adapter_satisfies_the_normalized_model_invariants() {
    for s in subjects() {
        for c in &list(&s, false).page.conversations {
            check_conversation(s.kind, s.vendor_id, c);
        }
    }
}

/// A message's role, vendor role and text.
type SpokenMessage = (Role, Option<String>, String);

#[test]
fn every_adapter_gives_the_same_messages_in_the_same_order() {
    let expected: Vec<(String, Vec<SpokenMessage>)> = vec![
        (
            "1002".into(),
            vec![
                (Role::User, None, "Hi".into()),
                (Role::Assistant, None, "Hello! How can I help?".into()),
                (
                    Role::Assistant,
                    Some("agent".into()),
                    "This is Sam, taking over.".into(),
                ),
            ],
        ),
        (
            "1001".into(),
            vec![
                (Role::User, None, "Where is my order?".into()),
                (Role::Assistant, None, "It ships tomorrow.".into()),
            ],
        ),
        ("1004".into(), vec![]),
        (
            "1003".into(),
            vec![
                (Role::System, None, "Conversation started".into()),
                (Role::User, None, "Is anyone there?".into()),
            ],
        ),
    ];
    for s in subjects() {
        let got: Vec<_> = list(&s, false)
            .page
            .conversations
            .iter()
            .map(|c| {
                let messages = c
                    .messages
                    .iter()
                    .map(|m| (m.role, m.vendor_role.clone(), m.content.to_string()))
                    .collect::<Vec<_>>();
                (c.id.clone(), messages)
            })
            .collect();
        assert_eq!(got, expected, "{}", s.kind);
    }
}

#[test]
fn every_adapter_gives_the_same_conversation_times_and_customers() {
    for s in subjects() {
        let got: Vec<(String, Value, Value)> = list(&s, false)
            .page
            .conversations
            .iter()
            .map(|c| {
                let j = json_of(c);
                (c.id.clone(), j["created_at"].clone(), j["customer"].clone())
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "1002".to_owned(),
                    Value::from("2024-03-03T16:30:00Z"),
                    Value::from("cust-b")
                ),
                (
                    "1001".to_owned(),
                    Value::from("2024-03-02T09:00:00Z"),
                    Value::from("cust-a")
                ),
                (
                    "1004".to_owned(),
                    Value::from("2024-03-02T09:00:00Z"),
                    Value::from("cust-d")
                ),
                (
                    "1003".to_owned(),
                    Value::from("2024-03-01T23:59:59.500Z"),
                    Value::Null
                ),
            ],
            "{}",
            s.kind
        );
    }
}

#[test]
fn every_adapter_attaches_raw_only_when_asked() {
    for s in subjects() {
        for c in &list(&s, false).page.conversations {
            assert!(json_of(c).get("raw").is_none(), "{}", s.kind);
        }
        for c in &list(&s, true).page.conversations {
            let raw: Value = serde_json::from_str(c.raw.as_ref().unwrap().get()).unwrap();
            assert_eq!(raw["id"], c.id.as_str(), "{}", s.kind);
            assert_eq!(json_of(c)["raw"], raw, "{}", s.kind);
        }
    }
}

#[test]
fn every_adapter_states_how_it_pages() {
    for s in subjects() {
        let a = adapter(s.kind, &options(s.dialect, 50));
        assert_eq!(a.kind(), s.kind);
        assert_eq!(a.paging(), s.paging, "{}", s.kind);
    }
}

#[test]
fn every_adapter_classifies_vendor_statuses_the_same_way() {
    let kind_of = |e: &ProviderError| match e {
        ProviderError::Unauthorized { .. } => "unauthorized",
        ProviderError::NotFound { .. } => "not_found",
        ProviderError::RateLimited { .. } => "rate_limited",
        ProviderError::Rejected { .. } => "rejected",
        ProviderError::Upstream { .. } => "upstream",
        ProviderError::InvalidBody { .. } => "invalid_body",
        ProviderError::ScanLimit { .. } => "scan_limit",
        ProviderError::NotSupported(_) => "not_supported",
    };
    let cases: [(u16, &str, &str); 7] = [
        (401, r#"{"message":"x"}"#, "unauthorized"),
        (403, r#"{"message":"x"}"#, "unauthorized"),
        (404, r#"{"message":"x"}"#, "not_found"),
        (429, r#"{"message":"x"}"#, "rate_limited"),
        (422, r#"{"message":"x"}"#, "rejected"),
        (500, r#"{"message":"x"}"#, "upstream"),
        (200, r#"{"unexpected": true}"#, "invalid_body"),
    ];
    for s in subjects() {
        for (status, body, expected) in cases {
            let a = adapter(s.kind, &options(s.dialect, 50));
            let mut op = a.list(target(s.vendor_id), &query(1, 10), None);
            let err = one_call(op.as_mut(), answer(status, body)).0.unwrap_err();
            assert_eq!(kind_of(&err), expected, "{} HTTP {status}", s.kind);
        }
    }
}

#[test]
fn single_conversation_reads_conform_or_are_not_supported() {
    for s in subjects() {
        let a = adapter(s.kind, &options(s.dialect, 50));
        match s.kind {
            ProviderKind::Chatbase | ProviderKind::Chatzuri => {
                let err = a.get(target(s.vendor_id), "1002", false).err().unwrap();
                assert!(matches!(err, ProviderError::NotSupported(_)), "{}", s.kind);
            }
            ProviderKind::ChatbaseV2 => {
                // One call: the export with `conversationId`, messages embedded.
                let mut op = a.get(target(s.vendor_id), "1002", false).unwrap();
                let (result, request) = one_call(
                    op.as_mut(),
                    ok(fixture("chatbase_v2/conformance_get_1002.json")),
                );
                assert_eq!(pairs(&request), [("conversationId", "1002")]);
                let c = result.unwrap();
                check_conversation(s.kind, s.vendor_id, &c);
                let listed = list(&s, false);
                let in_list = listed
                    .page
                    .conversations
                    .iter()
                    .find(|l| l.id == "1002")
                    .unwrap();
                assert_eq!(json_of(&c), json_of(in_list));
            }
            ProviderKind::Chatling => {
                let mut op = a.get(target(s.vendor_id), "1002", false).unwrap();
                let (result, requests) = drive(op.as_mut(), |r: &UpstreamRequest| {
                    if r.path.ends_with("/messages") {
                        ok(fixture("chatling/conformance_messages_1002.json"))
                    } else {
                        ok(fixture("chatling/conformance_retrieve_1002.json"))
                    }
                });
                assert_eq!(requests.len(), 2);
                let c = result.unwrap();
                check_conversation(s.kind, s.vendor_id, &c);
                // The same conversation as in the list.
                let listed = list(&s, false);
                let in_list = listed
                    .page
                    .conversations
                    .iter()
                    .find(|l| l.id == "1002")
                    .unwrap();
                assert_eq!(json_of(&c), json_of(in_list));
            }
        }
    }
}
