//! Chatbase API v1 adapter: the request it builds and the exact normalized output
//! for the vendor's documented JSON (guide, OpenAPI, vendors.md) and its variants.
#![allow(clippy::unwrap_used)]

mod common;

use chatgate_providers::{
    adapter, AdapterOptions, Method, Paging, ProviderError, ProviderKind, Source,
};
use common::*;
use serde_json::json;

const VENDOR_ID: &str = "ckl123abc456";

fn list(q: &chatgate_providers::ListQuery, fixture_name: &str) -> chatgate_providers::ListResult {
    let (result, _) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        q,
        ok(fixture(&format!("chatbase/{fixture_name}"))),
    );
    result.unwrap()
}

#[test]
fn chatbase_default_request_is_a_get_with_chatbot_id_page_and_size() {
    let (_, request) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        &query(1, 10),
        ok(fixture("chatbase/empty_page.json")),
    );
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, "/get-conversations");
    assert_eq!(
        pairs(&request),
        [("chatbotId", VENDOR_ID), ("page", "1"), ("size", "10")]
    );
    assert_eq!(request.json_body, None);
}

#[test]
fn chatbase_request_carries_every_filter_in_documented_order() {
    let mut q = query(3, 100);
    q.sources = sources(&[Source::Whatsapp, Source::Api, Source::Widget]);
    q.dates = dates(Some("2023-07-10"), Some("2023-07-13"));
    let (_, request) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        &q,
        ok(fixture("chatbase/empty_page.json")),
    );
    assert_eq!(
        pairs(&request),
        [
            ("chatbotId", VENDOR_ID),
            ("filteredSources", "API,Widget or Iframe,WhatsApp"),
            ("startDate", "2023-07-10"),
            ("endDate", "2023-07-13"),
            ("page", "3"),
            ("size", "100"),
        ]
    );
}

#[test]
fn chatbase_one_sided_date_ranges_send_only_that_end() {
    let mut q = query(1, 10);
    q.dates = dates(None, Some("2024-02-29"));
    let (_, request) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        &q,
        ok(fixture("chatbase/empty_page.json")),
    );
    assert_eq!(
        pairs(&request),
        [
            ("chatbotId", VENDOR_ID),
            ("endDate", "2024-02-29"),
            ("page", "1"),
            ("size", "10")
        ]
    );
    q.dates = dates(Some("2024-01-05"), None);
    let (_, request) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        &q,
        ok(fixture("chatbase/empty_page.json")),
    );
    assert_eq!(
        pairs(&request),
        [
            ("chatbotId", VENDOR_ID),
            ("startDate", "2024-01-05"),
            ("page", "1"),
            ("size", "10")
        ]
    );
}

#[test]
fn chatbase_filtered_sources_are_title_case_labels_for_every_channel() {
    let mut q = query(1, 10);
    q.sources = sources(&Source::ALL);
    let (_, request) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        &q,
        ok(fixture("chatbase/empty_page.json")),
    );
    assert_eq!(
        request.query[1],
        (
            "filteredSources",
            "API,Chatbase site,Widget or Iframe,WhatsApp,Messenger,Instagram,Slack,\
             Playground,Action preview,Unspecified"
                .to_owned()
        )
    );
}

#[test]
fn chatbase_openapi_example_normalizes_exactly() {
    let result = list(&query(1, 10), "openapi_example.json");
    assert_eq!(
        json_list(&result),
        json!([{
            "id": "conv_123",
            "chatbot_id": "support",
            "provider": "chatbase",
            "created_at": "2024-01-01T12:00:00Z",
            "updated_at": "2024-01-01T12:05:00Z",
            "customer": null,
            "source": "api",
            "messages": [
                {"role": "user", "content": "Hello, I need help with my order", "created_at": null}
            ]
        }])
    );
    assert!(!result.page.has_more, "1 of size 10 is the last page");
    assert_eq!(result.vendor_page_size, None);
}

#[test]
fn chatbase_vendors_md_example_normalizes_exactly() {
    let result = list(&query(1, 10), "vendors_md_example.json");
    assert_eq!(
        json_list(&result),
        json!([{
            "id": "conv_123",
            "chatbot_id": "support",
            "provider": "chatbase",
            "created_at": "2024-01-01T12:00:00Z",
            "updated_at": "2024-01-01T12:05:00Z",
            "customer": "string",
            "source": "api",
            "messages": [
                {"role": "user", "content": "Hello", "created_at": null},
                {"role": "assistant", "content": "Hi!", "created_at": null}
            ]
        }])
    );
}

#[test]
fn chatbase_guide_shape_without_updated_at_gives_null_updated_at() {
    let result = list(&query(1, 10), "guide_shape_with_values.json");
    assert_eq!(
        json_list(&result),
        json!([{
            "id": "conv_guide_1",
            "chatbot_id": "support",
            "provider": "chatbase",
            "created_at": "2023-07-10T09:15:00Z",
            "updated_at": null,
            "customer": "visitor-42",
            "source": "website",
            "messages": [
                {"role": "user", "content": "Do you ship to Kenya?", "created_at": null},
                {"role": "assistant", "content": "Yes, we ship to Kenya within 5 business days.", "created_at": null}
            ]
        }])
    );
}

#[test]
fn chatbase_guide_placeholder_example_is_an_invalid_body_not_a_panic() {
    // The guide's example uses the literal "string" as `created_at`.
    let (result, _) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        &query(1, 10),
        ok(fixture("chatbase/guide_example.json")),
    );
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("created_at"), "{reason}");
}

#[test]
fn chatbase_offset_and_fractional_timestamps_become_utc_with_z() {
    let result = list(&query(1, 10), "offset_and_fractional_timestamps.json");
    assert_eq!(
        json_list(&result),
        json!([
            {
                "id": "conv_fraction",
                "chatbot_id": "support",
                "provider": "chatbase",
                "created_at": "2024-03-10T08:00:00.500Z",
                "updated_at": "2024-03-10T08:00:09.123456Z",
                "customer": "c-2",
                "source": "slack",
                "messages": []
            },
            {
                "id": "conv_offset_minus",
                "chatbot_id": "support",
                "provider": "chatbase",
                "created_at": "2024-03-10T00:00:00Z",
                "updated_at": null,
                "customer": "c-3",
                "source": "messenger",
                "messages": []
            },
            {
                "id": "conv_offset_plus",
                "chatbot_id": "support",
                "provider": "chatbase",
                "created_at": "2024-03-09T23:30:00Z",
                "updated_at": "2024-03-09T23:45:30.250Z",
                "customer": "c-1",
                "source": "whatsapp",
                "messages": [{"role": "user", "content": "late night question", "created_at": null}]
            }
        ])
    );
}

#[test]
fn chatbase_lowercase_openapi_source_values_map_to_canonical_ids() {
    let result = list(&query(1, 10), "lowercase_openapi_sources.json");
    let got: Vec<(String, Source)> = result
        .page
        .conversations
        .iter()
        .map(|c| (c.id.clone(), c.source))
        .collect();
    assert_eq!(
        got,
        [
            ("conv_api".to_owned(), Source::Api),
            ("conv_website".to_owned(), Source::Website),
            ("conv_whatsapp".to_owned(), Source::Whatsapp),
            ("conv_slack".to_owned(), Source::Slack),
            ("conv_messenger".to_owned(), Source::Messenger),
            ("conv_instagram".to_owned(), Source::Instagram),
        ]
    );
}

#[test]
fn chatbase_title_case_labels_map_and_unknown_sources_become_unspecified() {
    let result = list(&query(1, 10), "title_case_and_unknown_sources.json");
    let got: Vec<serde_json::Value> = json_list(&result)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["id"], c["source"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["conv_widget", "widget"]),
            json!(["conv_action_preview", "action_preview"]),
            json!(["conv_playground", "playground"]),
            json!(["conv_unspecified", "unspecified"]),
            json!(["conv_telegram", "unspecified"]),
            json!(["conv_empty_source", "unspecified"]),
        ]
    );
}

#[test]
fn chatbase_unknown_source_survives_in_raw() {
    let mut q = query(1, 10);
    q.include_raw = true;
    let result = list(&q, "title_case_and_unknown_sources.json");
    let telegram = result
        .page
        .conversations
        .iter()
        .find(|c| c.id == "conv_telegram")
        .unwrap();
    assert_eq!(telegram.source, Source::Unspecified);
    assert!(telegram
        .raw
        .as_ref()
        .unwrap()
        .get()
        .contains("\"Telegram\""));
}

#[test]
fn chatbase_missing_optional_fields_become_nulls_and_empty_lists() {
    let result = list(&query(1, 10), "missing_optional_fields.json");
    assert_eq!(
        json_list(&result),
        json!([
            {
                "id": "conv_nulls",
                "chatbot_id": "support",
                "provider": "chatbase",
                "created_at": "2024-04-02T10:00:00Z",
                "updated_at": null,
                "customer": null,
                "source": "unspecified",
                "messages": [{"role": "user", "content": "anyone there?", "created_at": null}]
            },
            {
                "id": "conv_minimal",
                "chatbot_id": "support",
                "provider": "chatbase",
                "created_at": "2024-04-01T10:00:00Z",
                "updated_at": null,
                "customer": null,
                "source": "unspecified",
                "messages": []
            }
        ])
    );
}

#[test]
fn chatbase_unknown_role_becomes_assistant_and_keeps_vendor_role() {
    let result = list(&query(1, 10), "unknown_role.json");
    assert_eq!(
        json_list(&result)[0]["messages"],
        json!([
            {"role": "system", "content": "You are a helpful support bot.", "created_at": null},
            {"role": "user", "content": "I want a human", "created_at": null},
            {"role": "assistant", "content": "Connecting you to an agent.", "created_at": null},
            {"role": "assistant", "vendor_role": "operator", "content": "Hi Jane, this is Sam from support.", "created_at": null},
            {"role": "user", "content": "thanks Sam", "created_at": null}
        ])
    );
    assert_eq!(json_list(&result)[0]["customer"], "jane@example.com");
    assert_eq!(json_list(&result)[0]["source"], "widget");
}

#[test]
fn chatbase_conversations_come_newest_first_and_ties_keep_vendor_order() {
    let result = list(&query(1, 10), "unsorted_page.json");
    assert_eq!(
        ids(&result),
        [
            "conv_a",
            "conv_b",
            "conv_tie_first",
            "conv_tie_second",
            "conv_d"
        ]
    );
    // The two tied conversations are the same instant written two ways.
    let tied = &result.page.conversations[2..4];
    assert_eq!(tied[0].created_at, tied[1].created_at);
    assert_eq!(json_of(&tied[1])["created_at"], "2024-06-01T08:00:00Z");
}

#[test]
fn chatbase_full_page_may_have_more_and_short_or_empty_page_is_last() {
    assert!(list(&query(1, 3), "three_conversations.json").page.has_more);
    assert!(!list(&query(1, 4), "three_conversations.json").page.has_more);
    let empty = list(&query(7, 10), "empty_page.json");
    assert!(empty.page.conversations.is_empty());
    assert!(!empty.page.has_more);
}

#[test]
fn chatbase_more_conversations_than_size_is_an_invalid_body() {
    let (result, _) = list_once(
        ProviderKind::Chatbase,
        VENDOR_ID,
        &query(1, 2),
        ok(fixture("chatbase/three_conversations.json")),
    );
    let reason = invalid_body_reason(&result.unwrap_err(), 200);
    assert!(reason.contains("asked for 2"), "{reason}");
}

#[test]
fn chatbase_raw_is_present_only_with_include_raw_and_byte_identical() {
    let text = fixture_text("chatbase/unknown_role.json");
    let without = list(&query(1, 10), "unknown_role.json");
    assert!(without.page.conversations[0].raw.is_none());
    assert!(json_of(&without.page.conversations[0]).get("raw").is_none());

    let mut q = query(1, 10);
    q.include_raw = true;
    let with = list(&q, "unknown_role.json");
    let vendor_object = array_items(value_after_key(&text, "data"))[0];
    assert_eq!(
        with.page.conversations[0].raw.as_ref().unwrap().get(),
        vendor_object
    );
    // The serialized conversation embeds the vendor object as JSON, not as a string.
    let json = json_of(&with.page.conversations[0]);
    assert_eq!(json["raw"]["messages"][3]["role"], "operator");
    assert_eq!(json["raw"]["chatbot_id"], VENDOR_ID);
}

#[test]
fn chatbase_raw_follows_its_conversation_through_the_sort() {
    let text = fixture_text("chatbase/offset_and_fractional_timestamps.json");
    let objects = array_items(value_after_key(&text, "data"));
    let mut q = query(1, 10);
    q.include_raw = true;
    let result = list(&q, "offset_and_fractional_timestamps.json");
    for c in &result.page.conversations {
        let raw = c.raw.as_ref().unwrap().get();
        let expected = objects
            .iter()
            .find(|o| o.contains(&format!("\"{}\"", c.id)))
            .unwrap();
        assert_eq!(raw, *expected, "raw of {}", c.id);
    }
}

#[test]
fn chatbase_chatbot_id_is_the_bot_name_not_the_vendor_id() {
    let result = list(&query(1, 10), "openapi_example.json");
    assert_eq!(result.page.conversations[0].chatbot_id, "support");
    assert_eq!(
        result.page.conversations[0].provider,
        ProviderKind::Chatbase
    );
}

#[test]
fn chatbase_has_no_single_conversation_endpoint() {
    let chatbase = adapter(ProviderKind::Chatbase, &AdapterOptions::default());
    assert_eq!(chatbase.kind(), ProviderKind::Chatbase);
    assert_eq!(chatbase.paging(), Paging::CallerSized);
    let err = chatbase
        .get(target(VENDOR_ID), "conv_123", false)
        .err()
        .unwrap();
    assert!(matches!(err, ProviderError::NotSupported(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(err.upstream_status(), None);
}
