//! Chatling single-conversation reads: the conversation call, then every page of
//! the messages endpoint (`sort=date_asc`), assembled into one chronological
//! conversation; shifted pages are re-read once, then refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use chatgate_providers::{
    adapter, Conversation, Dialect, Method, ProviderError, ProviderKind, UpstreamRequest,
    UpstreamResponse,
};
use common::*;
use serde_json::json;

const VENDOR_ID: &str = "chatling-bot-42";
const CONVERSATION: &str = "/chatbots/chatling-bot-42/conversations/8977617953";
const MESSAGES: &str = "/chatbots/chatling-bot-42/conversations/8977617953/messages";

fn get(
    conversation_id: &str,
    include_raw: bool,
    max_scan_pages: u32,
    vendor: impl FnMut(&UpstreamRequest) -> UpstreamResponse,
) -> (Result<Conversation, ProviderError>, Vec<UpstreamRequest>) {
    let chatling = adapter(
        ProviderKind::Chatling,
        &options(Dialect::Current, max_scan_pages),
    );
    let mut op = chatling
        .get(target(VENDOR_ID), conversation_id, include_raw)
        .unwrap();
    drive(op.as_mut(), vendor)
}

/// The messages page a request asks for (checking it is the documented call).
fn messages_page_asked(request: &UpstreamRequest) -> usize {
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, MESSAGES);
    let q = pairs(request);
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(q[0].0, "page");
    assert_eq!(q[1], ("sort", "date_asc"));
    q[0].1.parse().unwrap()
}

/// `n` messages, oldest first, a user question and a bot answer per minute.
fn messages(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (role, text) = if i % 2 == 0 { ("user", "question") } else { ("bot", "answer") };
            format!(
                r#"{{"text":"{text} {i}","role":"{role}","created_at":"2024-06-20T09:{:02}:{:02}+00:00"}}"#,
                i / 2,
                (i % 2) * 5
            )
        })
        .collect()
}

fn messages_body(all: &[String], page: usize, per_page: usize) -> Bytes {
    let n = all.len();
    let last = n.div_ceil(per_page).max(1);
    let from = ((page - 1) * per_page).min(n);
    let to = (from + per_page).min(n);
    Bytes::from(format!(
        r#"{{"status":"success","data":{{"pages":{{"current_page":{page},"last_page":{last},"per_page":{per_page}}},"messages":[{}]}}}}"#,
        all[from..to].join(",")
    ))
}

/// A vendor answering the documented conversation, then messages from `all` with
/// `per_page[k]` on the k-th messages call (the last repeats).
fn vendor<'a>(
    all: &'a [String],
    per_page: &'a [usize],
) -> impl FnMut(&UpstreamRequest) -> UpstreamResponse + 'a {
    let mut calls = 0;
    move |request| {
        if request.path == CONVERSATION {
            assert_eq!(request.method, Method::Get);
            assert!(request.query.is_empty(), "no query parameters on retrieve");
            return ok(fixture("chatling/retrieve_conversation.json"));
        }
        let page = messages_page_asked(request);
        let pp = per_page[calls.min(per_page.len() - 1)];
        calls += 1;
        ok(messages_body(all, page, pp))
    }
}

fn contents(c: &Conversation) -> Vec<String> {
    c.messages.iter().map(|m| m.content.to_string()).collect()
}

fn expected_contents(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{} {i}", if i % 2 == 0 { "question" } else { "answer" }))
        .collect()
}

#[test]
fn chatling_get_of_the_documented_conversation_normalizes_exactly() {
    let (result, requests) = get("8977617953", false, 50, |r| {
        if r.path == CONVERSATION {
            ok(fixture("chatling/retrieve_conversation.json"))
        } else {
            assert_eq!(messages_page_asked(r), 1);
            ok(fixture("chatling/messages_of_retrieve_example.json"))
        }
    });
    assert_eq!(requests.len(), 2);
    assert_eq!(
        json_of(&result.unwrap()),
        documented_conversation_normalized()
    );
}

#[test]
fn chatling_get_reads_the_conversation_then_every_messages_page() {
    let pages = RefCell::new(Vec::new());
    let (result, requests) = get("8977617953", false, 50, |r| {
        if r.path == CONVERSATION {
            return ok(fixture("chatling/retrieve_conversation.json"));
        }
        let page = messages_page_asked(r);
        pages.borrow_mut().push(page);
        ok(fixture(&format!("chatling/messages_page_{page}_of_2.json")))
    });
    let c = result.unwrap();
    assert_eq!(requests[0].path, CONVERSATION);
    assert!(requests[0].query.is_empty());
    assert_eq!(requests[0].json_body, None);
    assert_eq!(*pages.borrow(), [1, 2]);
    assert_eq!(requests.len(), 3);

    // The messages endpoint's 18 messages replace the retrieve call's embedded 4.
    let expected: Vec<String> = (1..=9)
        .flat_map(|k| [format!("Question {k}"), format!("Answer {k}")])
        .collect();
    assert_eq!(contents(&c), expected);
    let json = json_of(&c);
    assert_eq!(
        json["messages"][1],
        json!({
            "role": "assistant", "content": "Answer 1", "created_at": "2024-06-20T08:10:05Z",
            "sources": [{"type": "webpage", "title": "Doc 1", "url": "https://docs.example.com/1"}]
        })
    );
    assert_eq!(
        json["messages"][3],
        json!({"role": "assistant", "content": "Answer 2", "created_at": "2024-06-20T08:11:05Z"})
    );
    assert_eq!(json["messages"][17]["content"], "Answer 9");
    // updated_at is the newest message, created_at the conversation's own.
    assert_eq!(json["updated_at"], "2024-06-20T08:18:05Z");
    assert_eq!(json["created_at"], "2024-06-14T15:45:34Z");
}

#[test]
fn chatling_get_messages_are_chronological_whatever_order_a_page_has() {
    let body = r#"{"status":"success","data":{"pages":{"current_page":1,"last_page":1,"per_page":15},"messages":[
        {"text":"third","role":"bot","created_at":"2024-06-20T09:00:10+00:00"},
        {"text":"first","role":"user","created_at":"2024-06-20T11:00:00+02:00"},
        {"text":"tie a","role":"user","created_at":"2024-06-20T09:00:05Z"},
        {"text":"tie b","role":"bot","created_at":"2024-06-20T09:00:05+00:00"}]}}"#;
    let (result, _) = get("8977617953", false, 50, |r| {
        if r.path == CONVERSATION {
            ok(fixture("chatling/retrieve_conversation.json"))
        } else {
            ok(body)
        }
    });
    let c = result.unwrap();
    assert_eq!(contents(&c), ["first", "tie a", "tie b", "third"]);
    assert_eq!(json_of(&c)["updated_at"], "2024-06-20T09:00:10Z");
}

#[test]
fn chatling_get_many_pages_in_order_with_a_15_message_page() {
    let all = messages(47);
    let (result, requests) = get("8977617953", false, 50, vendor(&all, &[15]));
    let c = result.unwrap();
    assert_eq!(contents(&c), expected_contents(47));
    let pages: Vec<usize> = requests[1..].iter().map(messages_page_asked).collect();
    assert_eq!(pages, [1, 2, 3, 4]);
    assert_eq!(json_of(&c)["updated_at"], "2024-06-20T09:23:00Z");
}

#[test]
fn chatling_get_shifted_messages_page_is_reread_once() {
    let all = messages(18);
    // Page 1 under per_page 15, page 2 under 10 (its first message would be #10,
    // but 15 are held): read again from page 1.
    let (result, requests) = get("8977617953", false, 50, vendor(&all, &[15, 10]));
    let c = result.unwrap();
    assert_eq!(contents(&c), expected_contents(18));
    let pages: Vec<usize> = requests[1..].iter().map(messages_page_asked).collect();
    assert_eq!(pages, [1, 2, 1, 2]);
}

#[test]
fn chatling_get_messages_shifting_twice_is_an_invalid_body() {
    let all = messages(30);
    let (result, requests) = get("8977617953", false, 50, vendor(&all, &[15, 10, 10, 7]));
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("shifting"), "{reason}");
    let pages: Vec<usize> = requests[1..].iter().map(messages_page_asked).collect();
    assert_eq!(pages, [1, 2, 1, 2]);
}

#[test]
fn chatling_get_raw_is_the_conversation_object_byte_identical() {
    let text = fixture_text("chatling/retrieve_conversation.json");
    let expected_raw = value_after_key(&text, "data");
    let all = messages(3);
    let (result, _) = get("8977617953", true, 50, vendor(&all, &[15]));
    let c = result.unwrap();
    assert_eq!(c.raw.as_ref().unwrap().get(), expected_raw);
    assert_eq!(json_of(&c)["raw"]["archived"], 0);

    let (result, _) = get("8977617953", false, 50, vendor(&all, &[15]));
    assert!(json_of(&result.unwrap()).get("raw").is_none());
}

#[test]
fn chatling_get_without_messages_has_null_updated_at_and_text_ids() {
    let (result, requests) = get("8977617999", false, 50, |r| {
        if r.path.ends_with("/messages") {
            ok(fixture("chatling/messages_empty.json"))
        } else {
            assert_eq!(r.path, "/chatbots/chatling-bot-42/conversations/8977617999");
            ok(fixture("chatling/conversation_numeric_ids.json"))
        }
    });
    assert_eq!(requests.len(), 2);
    assert_eq!(
        json_of(&result.unwrap()),
        json!({
            "id": "8977617999",
            "chatbot_id": "support",
            "provider": "chatling",
            "created_at": "2024-06-20T08:10:00Z",
            "updated_at": null,
            "customer": "4711",
            "source": "unspecified",
            "messages": []
        })
    );
}

#[test]
fn chatling_get_unknown_role_becomes_assistant_and_keeps_vendor_role() {
    let body = r#"{"status":"success","data":{"pages":{"current_page":1,"last_page":1,"per_page":15},"messages":[
        {"text":"hello","role":"system","created_at":"2024-06-20T09:00:00+00:00"},
        {"text":"I need a person","role":"user","created_at":"2024-06-20T09:00:01+00:00"},
        {"text":"Priya here","role":"agent","created_at":"2024-06-20T09:00:02+00:00","data":{"agent_id":17}}]}}"#;
    let (result, _) = get("8977617953", false, 50, |r| {
        if r.path == CONVERSATION {
            ok(fixture("chatling/retrieve_conversation.json"))
        } else {
            ok(body)
        }
    });
    assert_eq!(
        json_of(&result.unwrap())["messages"],
        json!([
            {"role": "system", "content": "hello", "created_at": "2024-06-20T09:00:00Z"},
            {"role": "user", "content": "I need a person", "created_at": "2024-06-20T09:00:01Z"},
            {"role": "assistant", "vendor_role": "agent", "content": "Priya here", "created_at": "2024-06-20T09:00:02Z"}
        ])
    );
}

#[test]
fn chatling_get_ids_are_percent_encoded_path_segments() {
    let chatling = adapter(ProviderKind::Chatling, &options(Dialect::Current, 50));
    let mut op = chatling.get(target("bot 1"), "abc/../x?y", false).unwrap();
    let (_, requests) = drive(op.as_mut(), |r| {
        if r.path.ends_with("/messages") {
            ok(fixture("chatling/messages_empty.json"))
        } else {
            ok(fixture("chatling/retrieve_conversation.json"))
        }
    });
    assert_eq!(
        requests[0].path,
        "/chatbots/bot%201/conversations/abc%2F..%2Fx%3Fy"
    );
    assert_eq!(
        requests[1].path,
        "/chatbots/bot%201/conversations/abc%2F..%2Fx%3Fy/messages"
    );
}

#[test]
fn chatling_get_unknown_conversation_is_not_found_without_further_calls() {
    let (result, requests) = get("404404", false, 50, |_| {
        answer(404, fixture("chatling/error_404.json"))
    });
    assert_eq!(
        result.unwrap_err(),
        ProviderError::NotFound {
            message: "Conversation not found".to_owned()
        }
    );
    assert_eq!(requests.len(), 1);
}

#[test]
fn chatling_get_failing_messages_page_fails_the_read() {
    let all = messages(20);
    let mut inner = vendor(&all, &[15]);
    let (result, requests) = get("8977617953", false, 50, |r| {
        if r.path == MESSAGES && messages_page_asked(r) == 2 {
            answer(404, fixture("chatling/error_404.json"))
        } else {
            inner(r)
        }
    });
    assert!(matches!(
        result.unwrap_err(),
        ProviderError::NotFound { .. }
    ));
    assert_eq!(requests.len(), 3);

    let mut inner = vendor(&all, &[15]);
    let (result, _) = get("8977617953", false, 50, |r| {
        if r.path == MESSAGES {
            answer(429, fixture("chatling/error_429.json"))
        } else {
            inner(r)
        }
    });
    assert_eq!(
        result.unwrap_err(),
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(15))
        }
    );
}

#[test]
fn chatling_get_messages_pages_count_against_the_scan_bound() {
    let all = messages(40);
    let (result, requests) = get("8977617953", false, 2, vendor(&all, &[15]));
    assert_eq!(result.unwrap_err(), ProviderError::ScanLimit { pages: 2 });
    assert_eq!(
        requests.len(),
        3,
        "the conversation call and two messages pages"
    );

    let (result, _) = get("8977617953", false, 3, vendor(&all, &[15]));
    assert_eq!(contents(&result.unwrap()), expected_contents(40));
}

#[test]
fn chatling_get_wrong_messages_page_is_an_invalid_body() {
    let all = messages(20);
    let (result, _) = get("8977617953", false, 50, |r| {
        if r.path == CONVERSATION {
            ok(fixture("chatling/retrieve_conversation.json"))
        } else {
            // Always page 1, whatever was asked.
            ok(messages_body(&all, 1, 15))
        }
    });
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("current_page"), "{reason}");
}

#[test]
fn chatling_get_bad_message_timestamp_is_an_invalid_body() {
    let body = r#"{"status":"success","data":{"pages":{"current_page":1,"last_page":1,"per_page":15},"messages":[
        {"text":"hello","role":"user","created_at":"20 June 2024"}]}}"#;
    let (result, _) = get("8977617953", false, 50, |r| {
        if r.path == CONVERSATION {
            ok(fixture("chatling/retrieve_conversation.json"))
        } else {
            ok(body)
        }
    });
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("created_at"), "{reason}");
}

#[test]
fn chatling_get_of_a_success_envelope_without_data_is_an_invalid_body() {
    let (result, requests) = get("8977617953", false, 50, |_| {
        ok(fixture("chatling/success_without_data.json"))
    });
    invalid_body_reason(&result.unwrap_err(), 200);
    assert_eq!(requests.len(), 1);
}
