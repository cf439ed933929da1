//! Chatzuri adapter: both documented request dialects (current GET + `agentId`,
//! legacy POST + JSON body with string `page`/`size`), its source labels, and the
//! exact normalized output for its documented response shape.
#![allow(clippy::unwrap_used)]

mod common;

use chatgate_providers::{
    adapter, Dialect, ListQuery, ListResult, Method, Paging, ProviderError, ProviderKind, Source,
    UpstreamRequest,
};
use common::*;
use serde_json::json;

const VENDOR_ID: &str = "zuri-agent-7";

fn run(dialect: Dialect, q: &ListQuery, fixture_name: &str) -> (ListResult, UpstreamRequest) {
    let chatzuri = adapter(ProviderKind::Chatzuri, &options(dialect, 50));
    let mut op = chatzuri.list(target(VENDOR_ID), q, None);
    let (result, request) = one_call(
        op.as_mut(),
        ok(fixture(&format!("chatzuri/{fixture_name}"))),
    );
    (result.unwrap(), request)
}

fn filtered_query() -> ListQuery {
    // The doc's example request: startDate=2023-01-01&endDate=2023-12-12&page=1&size=20.
    let mut q = query(1, 20);
    q.dates = dates(Some("2023-01-01"), Some("2023-12-12"));
    q.sources = sources(&[Source::Whatsapp, Source::Website, Source::Api]);
    q
}

#[test]
fn chatzuri_current_dialect_is_a_get_with_agent_id_in_the_query() {
    let (_, request) = run(Dialect::Current, &filtered_query(), "empty_page.json");
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, "/get-conversations");
    assert_eq!(
        pairs(&request),
        [
            ("agentId", VENDOR_ID),
            ("filteredSources", "API,Chatzuri site,WhatsApp"),
            ("startDate", "2023-01-01"),
            ("endDate", "2023-12-12"),
            ("page", "1"),
            ("size", "20"),
        ]
    );
    assert_eq!(request.json_body, None);
}

#[test]
fn chatzuri_is_the_default_dialect_when_options_are_default() {
    let chatzuri = adapter(
        ProviderKind::Chatzuri,
        &chatgate_providers::AdapterOptions::default(),
    );
    let mut op = chatzuri.list(target(VENDOR_ID), &query(1, 10), None);
    let (_, request) = one_call(op.as_mut(), ok(fixture("chatzuri/empty_page.json")));
    assert_eq!(request.method, Method::Get);
    assert_eq!(
        pairs(&request),
        [("agentId", VENDOR_ID), ("page", "1"), ("size", "10")]
    );
}

#[test]
fn chatzuri_legacy_dialect_posts_a_json_body_with_string_page_and_size() {
    let (_, request) = run(Dialect::Legacy, &filtered_query(), "empty_page.json");
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.path, "/get-conversations");
    assert!(request.query.is_empty(), "{:?}", request.query);
    assert_eq!(
        json_body(&request),
        json!({
            "chatbotId": VENDOR_ID,
            "filteredSources": "API,Chatzuri site,WhatsApp",
            "startDate": "2023-01-01",
            "endDate": "2023-12-12",
            "page": "1",
            "size": "20"
        })
    );
}

#[test]
fn chatzuri_legacy_body_omits_unset_optional_fields() {
    let (_, request) = run(Dialect::Legacy, &query(4, 100), "empty_page.json");
    assert_eq!(
        json_body(&request),
        json!({"chatbotId": VENDOR_ID, "page": "4", "size": "100"})
    );
}

#[test]
fn chatzuri_source_filter_drops_channels_it_does_not_have() {
    let mut q = query(1, 10);
    q.sources = sources(&[
        Source::Playground,
        Source::ActionPreview,
        Source::Unspecified,
    ]);
    let (_, request) = run(Dialect::Current, &q, "empty_page.json");
    assert_eq!(
        request.query[1],
        ("filteredSources", "Unspecified".to_owned())
    );
}

#[test]
fn chatzuri_filter_naming_only_channels_it_lacks_makes_no_call_in_either_dialect() {
    for dialect in [Dialect::Current, Dialect::Legacy] {
        let chatzuri = adapter(ProviderKind::Chatzuri, &options(dialect, 50));
        let mut q = query(1, 10);
        q.sources = sources(&[Source::Playground, Source::ActionPreview]);
        let mut op = chatzuri.list(target(VENDOR_ID), &q, None);
        let (result, requests) = drive(op.as_mut(), |r| panic!("no call expected, got {r:?}"));
        let result = result.unwrap();
        assert!(requests.is_empty());
        assert!(result.page.conversations.is_empty());
        assert!(!result.page.has_more);
    }
}

#[test]
fn chatzuri_documented_example_with_values_normalizes_exactly() {
    let (result, _) = run(Dialect::Current, &query(1, 10), "conversations.json");
    assert_eq!(
        json_list(&result),
        json!([
            {
                "id": "zc_1003",
                "chatbot_id": "support",
                "provider": "chatzuri",
                "created_at": "2023-12-12T20:30:00Z",
                "updated_at": null,
                "customer": "visitor-9",
                "source": "website",
                "messages": [
                    {"role": "user", "content": "Opening hours?", "created_at": null},
                    {"role": "assistant", "content": "9am to 6pm, Monday to Saturday.", "created_at": null}
                ]
            },
            {
                "id": "zc_1002",
                "chatbot_id": "support",
                "provider": "chatzuri",
                "created_at": "2023-11-20T14:05:00Z",
                "updated_at": null,
                "customer": "+254700000001",
                "source": "whatsapp",
                "messages": [
                    {"role": "user", "content": "Habari! Do you deliver to Nairobi?", "created_at": null},
                    {"role": "assistant", "content": "Yes, delivery to Nairobi takes 2 days.", "created_at": null}
                ]
            },
            {
                "id": "zc_1001",
                "chatbot_id": "support",
                "provider": "chatzuri",
                "created_at": "2023-01-01T00:00:00Z",
                "updated_at": null,
                "customer": "",
                "source": "widget",
                "messages": [{"role": "user", "content": "test", "created_at": null}]
            }
        ])
    );
    assert!(!result.page.has_more);
}

#[test]
fn chatzuri_legacy_dialect_parses_the_same_answer_the_same_way() {
    let (current, _) = run(Dialect::Current, &query(1, 3), "conversations.json");
    let (legacy, _) = run(Dialect::Legacy, &query(1, 3), "conversations.json");
    assert_eq!(json_list(&current), json_list(&legacy));
    assert!(
        current.page.has_more && legacy.page.has_more,
        "3 of size 3 may continue"
    );
}

#[test]
fn chatzuri_documented_placeholder_example_is_an_invalid_body() {
    let chatzuri = adapter(ProviderKind::Chatzuri, &options(Dialect::Current, 50));
    let mut op = chatzuri.list(target(VENDOR_ID), &query(1, 10), None);
    let (result, _) = one_call(op.as_mut(), ok(fixture("chatzuri/response_example.json")));
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("created_at"), "{reason}");
}

#[test]
fn chatzuri_unknown_role_becomes_assistant_and_keeps_vendor_role() {
    let (result, _) = run(Dialect::Current, &query(1, 10), "unknown_role.json");
    assert_eq!(
        json_list(&result)[0]["messages"],
        json!([
            {"role": "user", "content": "refund please", "created_at": null},
            {"role": "assistant", "vendor_role": "human_agent", "content": "I have issued the refund.", "created_at": null}
        ])
    );
    assert_eq!(json_list(&result)[0]["source"], "unspecified");
}

#[test]
fn chatzuri_raw_is_byte_identical_and_only_with_include_raw() {
    let text = fixture_text("chatzuri/conversations.json");
    let objects = array_items(value_after_key(&text, "data"));
    let mut q = query(1, 10);
    q.include_raw = true;
    let (result, _) = run(Dialect::Legacy, &q, "conversations.json");
    let raws: Vec<&str> = result
        .page
        .conversations
        .iter()
        .map(|c| c.raw.as_ref().unwrap().get())
        .collect();
    // Newest first by created_at: the vendor's second object, then its first, then its third.
    assert_eq!(raws, [objects[1], objects[0], objects[2]]);

    let (without, _) = run(Dialect::Legacy, &query(1, 10), "conversations.json");
    assert!(without.page.conversations.iter().all(|c| c.raw.is_none()));
}

#[test]
fn chatzuri_more_conversations_than_size_is_an_invalid_body() {
    let chatzuri = adapter(ProviderKind::Chatzuri, &options(Dialect::Legacy, 50));
    let mut op = chatzuri.list(target(VENDOR_ID), &query(1, 2), None);
    let (result, _) = one_call(op.as_mut(), ok(fixture("chatzuri/conversations.json")));
    invalid_body_reason(&result.unwrap_err(), 200);
}

#[test]
fn chatzuri_has_no_single_conversation_endpoint() {
    let chatzuri = adapter(ProviderKind::Chatzuri, &options(Dialect::Legacy, 50));
    assert_eq!(chatzuri.kind(), ProviderKind::Chatzuri);
    assert_eq!(chatzuri.paging(), Paging::CallerSized);
    let err = chatzuri
        .get(target(VENDOR_ID), "zc_1001", true)
        .err()
        .unwrap();
    assert!(matches!(err, ProviderError::NotSupported(_)), "{err:?}");
}
