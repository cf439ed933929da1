//! A bot on Chatbase API v2 (`kind = "chatbase_v2"`) through the real server
//! against the emulator: the same normalized shape as every other vendor, paging
//! in order costs one vendor call per vendor page (remembered cursors, never a
//! re-walk), one conversation by id, and a dual-read bot with a v2 backend.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashSet;

use chatgate_emulator::Vendor;
use common::{created_at, ids, Harness};

const LIST: &str = "/api/v1/get-conversations";

#[actix_rt::test]
async fn a_v2_bot_answers_the_normalized_shape() {
    let h = Harness::start().await;
    let r = h.get(&format!("{LIST}?chatbotId=support-v2&size=5")).await;
    let body = r.ok();
    assert_eq!(r.header("x-provider"), Some("chatbase_v2"));
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    assert_eq!(body["next_page"], 2);
    for c in data {
        assert_eq!(c["chatbot_id"], "support-v2", "the gateway's bot name");
        assert_eq!(c["provider"], "chatbase_v2");
        let t = c["created_at"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() >= 20, "{t}");
        assert!(c["source"].is_string());
        for m in c["messages"].as_array().unwrap() {
            assert!(["user", "assistant", "system"].contains(&m["role"].as_str().unwrap()));
            assert!(m["content"].is_string());
        }
    }
    let times: Vec<_> = data.iter().map(created_at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    h.stop().await;
}

#[actix_rt::test]
async fn paging_in_order_makes_one_vendor_call_per_vendor_page() {
    let h = Harness::start().await;
    let before = h.calls(Vendor::ChatbaseV2);
    let mut seen = HashSet::new();
    let mut pages = 0;
    let mut page = 1;
    loop {
        let body = h
            .get(&format!("{LIST}?chatbotId=support-v2&size=20&page={page}"))
            .await
            .ok();
        pages += 1;
        for id in ids(&body) {
            assert!(seen.insert(id.clone()), "{id} twice");
        }
        match body["next_page"].as_u64() {
            Some(next) => page = next,
            None => break,
        }
        assert!(pages < 100, "paging never ends");
    }
    assert!(seen.len() > 100, "{} conversations", seen.len());
    let calls = h.calls(Vendor::ChatbaseV2) - before;
    // Vendor pages hold at most 20: a 20-conversation gateway page is one vendor
    // page, continued from the cursor remembered at the previous boundary.
    assert_eq!(calls, pages, "{calls} vendor calls for {pages} pages");
    h.stop().await;
}

#[actix_rt::test]
async fn one_v2_conversation_is_read_by_id() {
    let h = Harness::start().await;
    let first = h
        .get(&format!("{LIST}?chatbotId=support-v2&size=1"))
        .await
        .ok();
    let id = ids(&first).remove(0);
    let one = h
        .get(&format!("/api/v1/conversations/{id}?chatbotId=support-v2"))
        .await
        .ok();
    assert_eq!(one["data"]["id"], id.as_str());
    assert_eq!(one["data"]["provider"], "chatbase_v2");
    h.get("/api/v1/conversations/no-such-conversation?chatbotId=support-v2")
        .await
        .expect_error(404, "not_found");
    h.stop().await;
}

#[actix_rt::test]
async fn a_dual_read_bot_merges_a_v2_backend() {
    let h = Harness::start_with(|toml| {
        format!(
            "{toml}\n[[bots.moving.backends]]\nprovider = \"chatbase-v2\"\nchatbot_id = \"cb-support\"\n\n\
             [[bots.moving.backends]]\nprovider = \"chatling\"\nchatbot_id = \"{}\"\n",
            chatgate_emulator::CHATLING_BOT
        )
        .replace("bots = [\"*\"]", "bots = [\"*\"]")
    })
    .await;
    let r = h.get(&format!("{LIST}?chatbotId=moving&size=50")).await;
    let body = r.ok();
    assert_eq!(r.header("x-provider"), Some("chatbase_v2,chatling"));
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 50);
    let kinds: HashSet<_> = data
        .iter()
        .map(|c| c["provider"].as_str().unwrap())
        .collect();
    assert!(kinds.contains("chatbase_v2") || kinds.contains("chatling"));
    let times: Vec<_> = data.iter().map(created_at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    h.stop().await;
}
