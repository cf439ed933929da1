//! `GET /api/v1/conversations/{id}` through the real server.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use chatgate_emulator::{self as emulator, Vendor};
use common::Harness;
use serde_json::Value;

/// A Chatling conversation with more messages than one messages page holds.
fn long_conversation(h: &Harness) -> Value {
    h.state()
        .conversations(Vendor::Chatling, emulator::CHATLING_BOT)
        .into_iter()
        .find(|c| c["messages"].as_array().unwrap().len() > 15)
        .expect("the data set has a conversation needing two message pages")
}

#[actix_rt::test]
async fn chatling_detail_reads_every_page_of_messages() {
    let h = Harness::start().await;
    let vendor = long_conversation(&h);
    let id = vendor["id"].as_str().unwrap();
    let n = vendor["messages"].as_array().unwrap().len();
    let res = h
        .get(&format!("/api/v1/conversations/{id}?chatbotId=helpdesk"))
        .await;
    assert_eq!(res.header("x-provider"), Some("chatling"));
    let body = res.ok();
    let c = &body["data"];
    assert_eq!(c["id"], id);
    assert_eq!(c["chatbot_id"], "helpdesk");
    let messages = c["messages"].as_array().unwrap();
    assert_eq!(messages.len(), n, "every message, across message pages");
    let texts: Vec<&Value> = messages.iter().map(|m| &m["content"]).collect();
    let expected: Vec<&Value> = vendor["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|m| &m["text"])
        .collect();
    assert_eq!(texts, expected, "chronological");
    assert_eq!(c["updated_at"], messages.last().unwrap()["created_at"]);
    let pages = n.div_ceil(15) as u64;
    assert_eq!(h.calls(Vendor::Chatling), 1 + pages);
    let sent = h.state().requests();
    assert!(sent[1]
        .path
        .ends_with(&format!("/conversations/{id}/messages")));
    assert!(sent[1].query.contains("page=1"));
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_detail_with_raw_and_with_no_messages() {
    let h = Harness::start().await;
    let vendor = h
        .state()
        .conversations(Vendor::Chatling, emulator::CHATLING_BOT)
        .into_iter()
        .find(|c| c["messages"].as_array().unwrap().is_empty())
        .expect("the data set has an empty conversation");
    let id = vendor["id"].as_str().unwrap();
    let body = h
        .get(&format!(
            "/api/v1/conversations/{id}?chatbotId=helpdesk&include=raw"
        ))
        .await
        .ok();
    assert_eq!(body["data"]["messages"], serde_json::json!([]));
    assert_eq!(body["data"]["updated_at"], Value::Null);
    assert_eq!(body["data"]["raw"], vendor);
    h.stop().await;
}

#[actix_rt::test]
async fn an_unknown_conversation_is_not_found() {
    let h = Harness::start().await;
    let body = h
        .get("/api/v1/conversations/1234?chatbotId=helpdesk")
        .await
        .expect_error(404, "not_found");
    assert_eq!(body["provider"], "chatling");
    assert_eq!(body["upstream_status"], 404);
    h.stop().await;
}

#[actix_rt::test]
async fn vendors_without_a_detail_endpoint_answer_501_without_a_call() {
    let h = Harness::start().await;
    for (bot, provider) in [("support", "chatbase"), ("sales", "chatzuri")] {
        let body = h
            .get(&format!("/api/v1/conversations/conv_1?chatbotId={bot}"))
            .await
            .expect_error(501, "not_supported");
        assert_eq!(body["provider"], provider);
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("get-conversations"));
    }
    assert_eq!(h.calls(Vendor::Chatbase) + h.calls(Vendor::Chatzuri), 0);
    h.stop().await;
}

#[actix_rt::test]
async fn detail_parameters_are_validated() {
    let h = Harness::start().await;
    h.get("/api/v1/conversations/123")
        .await
        .expect_error(400, "invalid_request");
    h.get("/api/v1/conversations/..?chatbotId=helpdesk")
        .await
        .expect_error(400, "invalid_request");
    h.get("/api/v1/conversations/a%2Fb?chatbotId=helpdesk")
        .await
        .expect_error(400, "invalid_request");
    h.get("/api/v1/conversations/123?chatbotId=nobody")
        .await
        .expect_error(404, "bot_not_found");
    h.get("/api/v1/conversations/123?chatbotId=helpdesk&include=all")
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(h.calls(Vendor::Chatling), 0);
    h.stop().await;
}
