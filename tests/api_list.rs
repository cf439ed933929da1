//! `GET|POST /api/v1/get-conversations` through the real server against the
//! emulated vendors: normalization, paging, filters, dialects, headers.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use chatgate_emulator::{self as emulator, Vendor};
use chatgate_providers::Source;
use chrono::NaiveDate;
use common::{created_at, ids, Harness};
use serde_json::Value;

/// The vendor's conversations, newest first, as the emulator holds them.
fn vendor_ids(h: &Harness, vendor: Vendor, bot: &str) -> Vec<String> {
    h.state()
        .conversations(vendor, bot)
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Pages through a bot with `size`, checking each page's invariants; returns all
/// ids in order and the number of pages read.
async fn page_through(h: &Harness, bot: &str, size: u32, extra: &str) -> (Vec<String>, u32) {
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let body = h
            .get(&format!(
                "/api/v1/get-conversations?chatbotId={bot}&page={page}&size={size}{extra}"
            ))
            .await
            .ok();
        assert_eq!(body["page"], page);
        assert_eq!(body["size"], size);
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= size as usize);
        assert!(
            data.windows(2)
                .all(|w| created_at(&w[0]) >= created_at(&w[1])),
            "page {page} is newest first"
        );
        all.extend(ids(&body));
        match body["next_page"].as_u64() {
            Some(next) => {
                assert_eq!(next, u64::from(page) + 1);
                assert_eq!(
                    data.len(),
                    size as usize,
                    "only a full page has a next page"
                );
            }
            None => return (all, page),
        }
        page += 1;
        assert!(page < 1000, "paging never ends");
    }
}

#[actix_rt::test]
async fn chatbase_pages_concatenate_to_the_vendor_list() {
    let h = Harness::start().await;
    let expected = vendor_ids(&h, Vendor::Chatbase, emulator::CHATBASE_BOT);
    assert_eq!(expected.len(), 137);
    for size in [1, 7, 10, 100] {
        let before = h.calls(Vendor::Chatbase);
        let (got, pages) = page_through(&h, "support", size, "").await;
        assert_eq!(got, expected, "size {size}");
        assert_eq!(
            h.calls(Vendor::Chatbase) - before,
            u64::from(pages),
            "one vendor call per page"
        );
    }
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_windows_are_assembled_exactly_from_vendor_pages() {
    let h = Harness::start().await;
    let expected = vendor_ids(&h, Vendor::Chatling, emulator::CHATLING_BOT);
    assert_eq!(expected.len(), 83);
    for size in [1, 3, 5, 7, 10, 100] {
        let (got, _) = page_through(&h, "helpdesk", size, "").await;
        assert_eq!(got, expected, "size {size}");
    }
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_page_size_is_learned_from_the_vendor_and_relearned_when_it_changes() {
    let h = Harness::start().await;
    let expected = vendor_ids(&h, Vendor::Chatling, emulator::CHATLING_BOT);
    // First request: probe page 1, learn per_page = 5, then read pages 3 and 4
    // for the window [10, 20).
    let body = h
        .get("/api/v1/get-conversations?chatbotId=helpdesk&page=2&size=10")
        .await
        .ok();
    assert_eq!(ids(&body), expected[10..20]);
    let first_calls = h.calls(Vendor::Chatling);
    assert_eq!(first_calls, 3);
    // Now known: the same window needs only its two vendor pages (the cache is
    // skipped, or it would need none).
    let body = h
        .request(
            awc::http::Method::GET,
            "/api/v1/get-conversations?chatbotId=helpdesk&page=2&size=10",
            Some(chatgate::demo::DEMO_KEY),
            &[("Cache-Control", "no-cache")],
            None,
        )
        .await
        .ok();
    assert_eq!(ids(&body), expected[10..20]);
    assert_eq!(h.calls(Vendor::Chatling) - first_calls, 2);
    // The vendor changes its page size: the window is still exact.
    h.state().set_chatling_per_page(7);
    let body = h
        .get("/api/v1/get-conversations?chatbotId=helpdesk&page=3&size=4")
        .await
        .ok();
    assert_eq!(ids(&body), expected[8..12]);
    let (all, _) = page_through(&h, "helpdesk", 9, "").await;
    assert_eq!(all, expected);
    h.stop().await;
}

fn in_range(c: &Value, start: Option<NaiveDate>, end: Option<NaiveDate>) -> bool {
    let day = chrono::DateTime::parse_from_rfc3339(c["created_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
        .date_naive();
    start.is_none_or(|s| day >= s) && end.is_none_or(|e| day <= e)
}

#[actix_rt::test]
async fn chatbase_filters_are_applied_by_the_vendor() {
    let h = Harness::start().await;
    let (start, end) = (
        NaiveDate::from_ymd_opt(2024, 3, 1),
        NaiveDate::from_ymd_opt(2024, 8, 31),
    );
    let wanted = [Source::Whatsapp, Source::Widget, Source::Website];
    let expected: Vec<String> = h
        .state()
        .conversations(Vendor::Chatbase, emulator::CHATBASE_BOT)
        .iter()
        .filter(|c| in_range(c, start, end))
        .filter(|c| wanted.contains(&Source::from_vendor(c["source"].as_str())))
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(expected.len() > 3, "the data set exercises the filter");
    let extra = "&filteredSources=whatsapp,%20Widget%20or%20Iframe,Chatbase%20site&startDate=2024-03-01&endDate=2024-08-31";
    let (got, _) = page_through(&h, "support", 3, extra).await;
    assert_eq!(got, expected);
    let sent = h.state().requests().last().unwrap().query.clone();
    assert!(
        sent.contains("filteredSources=Chatbase+site%2CWidget+or+Iframe%2CWhatsApp")
            || sent.contains("filteredSources=Chatbase%20site%2CWidget%20or%20Iframe%2CWhatsApp"),
        "vendor labels are sent: {sent}"
    );
    assert!(sent.contains("startDate=2024-03-01") && sent.contains("endDate=2024-08-31"));
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_dates_are_filtered_by_the_gateway() {
    let h = Harness::start().await;
    for (start, end) in [
        (Some("2024-04-01"), Some("2024-09-30")),
        (Some("2024-10-01"), None),
        (None, Some("2024-02-15")),
    ] {
        let parse = |d: Option<&str>| d.map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap());
        let expected: Vec<String> = h
            .state()
            .conversations(Vendor::Chatling, emulator::CHATLING_BOT)
            .iter()
            .filter(|c| in_range(c, parse(start), parse(end)))
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(!expected.is_empty());
        let mut extra = String::new();
        if let Some(s) = start {
            extra += &format!("&startDate={s}");
        }
        if let Some(e) = end {
            extra += &format!("&endDate={e}");
        }
        for size in [2, 5, 100] {
            let (got, _) = page_through(&h, "helpdesk", size, &extra).await;
            assert_eq!(got, expected, "{start:?}..{end:?} size {size}");
        }
        let sent = h.state().requests().last().unwrap().query.clone();
        assert!(
            !sent.contains("Date"),
            "Chatling gets no date parameters: {sent}"
        );
    }
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_source_filters_need_no_vendor_call_unless_unspecified_is_asked() {
    let h = Harness::start().await;
    let body = h
        .get("/api/v1/get-conversations?chatbotId=helpdesk&filteredSources=api,whatsapp")
        .await
        .ok();
    assert_eq!(body["data"], serde_json::json!([]));
    assert_eq!(body["next_page"], Value::Null);
    assert_eq!(h.calls(Vendor::Chatling), 0);
    let body = h
        .get("/api/v1/get-conversations?chatbotId=helpdesk&filteredSources=api,Unspecified&size=4")
        .await
        .ok();
    assert_eq!(
        ids(&body),
        vendor_ids(&h, Vendor::Chatling, emulator::CHATLING_BOT)[..4]
    );
    h.stop().await;
}

#[actix_rt::test]
async fn chatzuri_filters_on_channels_it_lacks_return_nothing_without_a_call() {
    let h = Harness::start().await;
    let body = h
        .get("/api/v1/get-conversations?chatbotId=sales&filteredSources=playground")
        .await
        .ok();
    assert_eq!(body["data"], serde_json::json!([]));
    assert_eq!(h.calls(Vendor::Chatzuri), 0);
    h.stop().await;
}

#[actix_rt::test]
async fn conversations_are_normalized_for_every_vendor() {
    let h = Harness::start().await;
    for (bot, provider) in [
        ("support", "chatbase"),
        ("sales", "chatzuri"),
        ("sales-legacy", "chatzuri"),
        ("helpdesk", "chatling"),
    ] {
        let res = h
            .get(&format!(
                "/api/v1/get-conversations?chatbotId={bot}&size=100"
            ))
            .await;
        assert_eq!(res.header("x-provider"), Some(provider));
        assert_eq!(
            res.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let body = res.ok();
        for c in body["data"].as_array().unwrap() {
            assert_eq!(c["chatbot_id"], bot, "the bot's name, never the vendor id");
            assert_eq!(c["provider"], provider);
            assert!(
                c["created_at"].as_str().unwrap().ends_with('Z'),
                "{}",
                c["created_at"]
            );
            if let Some(u) = c["updated_at"].as_str() {
                assert!(u.ends_with('Z'));
            }
            assert!(
                Source::ALL.iter().any(|s| c["source"] == s.as_str()),
                "{}",
                c["source"]
            );
            assert!(c.get("raw").is_none());
            let messages = c["messages"].as_array().unwrap();
            for m in messages {
                assert!(["user", "assistant", "system"].contains(&m["role"].as_str().unwrap()));
                if let Some(s) = m.get("sources") {
                    assert!(
                        !s.as_array().unwrap().is_empty(),
                        "empty sources are omitted"
                    );
                }
            }
            let times: Vec<&str> = messages
                .iter()
                .filter_map(|m| m["created_at"].as_str())
                .collect();
            let mut sorted = times.clone();
            sorted.sort();
            assert_eq!(times, sorted, "messages are chronological");
        }
    }
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_roles_and_sources_map_as_documented() {
    let h = Harness::start().await;
    let vendor = h
        .state()
        .conversations(Vendor::Chatling, emulator::CHATLING_BOT);
    let body = h
        .get("/api/v1/get-conversations?chatbotId=helpdesk&size=100")
        .await
        .ok();
    let mut saw_other_role = false;
    for (c, v) in body["data"].as_array().unwrap().iter().zip(&vendor) {
        let vm = v["messages"].as_array().unwrap();
        let nm = c["messages"].as_array().unwrap();
        assert_eq!(vm.len(), nm.len(), "no message dropped");
        // The vendor lists newest first; the gateway oldest first.
        for (n, v) in nm.iter().zip(vm.iter().rev()) {
            assert_eq!(n["content"], v["text"]);
            let expected_role = match v["role"].as_str().unwrap() {
                "user" => "user",
                "system" => "system",
                _ => "assistant",
            };
            assert_eq!(n["role"], expected_role);
            if !["user", "bot", "system"].contains(&v["role"].as_str().unwrap()) {
                assert_eq!(n["vendor_role"], v["role"]);
                saw_other_role = true;
            }
            let vendor_sources = v["data"]["sources"].as_array().map(Vec::len).unwrap_or(0);
            assert_eq!(
                n.get("sources")
                    .map(|s| s.as_array().unwrap().len())
                    .unwrap_or(0),
                vendor_sources
            );
        }
        assert_eq!(c["customer"], v["contact_id"]);
    }
    assert!(saw_other_role, "the data set has a human takeover");
    h.stop().await;
}

#[actix_rt::test]
async fn include_raw_carries_the_vendor_object_verbatim() {
    let h = Harness::start().await;
    for (bot, vendor, vendor_bot) in [
        ("support", Vendor::Chatbase, emulator::CHATBASE_BOT),
        ("helpdesk", Vendor::Chatling, emulator::CHATLING_BOT),
    ] {
        let body = h
            .get(&format!(
                "/api/v1/get-conversations?chatbotId={bot}&size=6&page=2&include=raw"
            ))
            .await
            .ok();
        let originals = h.state().conversations(vendor, vendor_bot);
        for (c, original) in body["data"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&originals[6..12])
        {
            assert_eq!(&c["raw"], original);
        }
    }
    h.stop().await;
}

#[actix_rt::test]
async fn chatzuri_dialects_send_what_each_doc_version_says() {
    let h = Harness::start().await;
    let current = h
        .get("/api/v1/get-conversations?chatbotId=sales&page=2&size=4")
        .await
        .ok();
    let req = h.state().requests().pop().unwrap();
    assert_eq!(req.method, "GET");
    assert!(
        req.query.contains("agentId=cz-sales") && !req.query.contains("chatbotId"),
        "{}",
        req.query
    );
    let legacy = h
        .get("/api/v1/get-conversations?chatbotId=sales-legacy&page=2&size=4")
        .await
        .ok();
    let req = h.state().requests().pop().unwrap();
    assert_eq!(req.method, "POST");
    let sent: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"chatbotId": "cz-sales", "page": "2", "size": "4"})
    );
    assert_eq!(
        ids(&current),
        ids(&legacy),
        "both dialects read the same history"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn post_body_dialect_matches_get() {
    let h = Harness::start().await;
    let get = h
        .get("/api/v1/get-conversations?agentId=support&page=3&size=5&filteredSources=API,slack")
        .await
        .ok();
    let post = h
        .post(
            "/api/v1/get-conversations",
            r#"{"chatbotId":"support","page":"3","size":5,"filteredSources":"API,slack","ignored":{"x":1}}"#,
        )
        .await
        .ok();
    assert_eq!(get, post);
    h.stop().await;
}

#[actix_rt::test]
async fn request_ids_are_echoed_when_sane_and_generated_otherwise() {
    let h = Harness::start().await;
    let res = h
        .request(
            awc::http::Method::GET,
            "/api/v1/get-conversations?chatbotId=support&size=1",
            Some(chatgate::demo::DEMO_KEY),
            &[("X-Request-Id", "trace-42.a_b")],
            None,
        )
        .await;
    assert_eq!(res.header("x-request-id"), Some("trace-42.a_b"));
    assert_eq!(
        h.state().requests().last().unwrap().request_id.as_deref(),
        Some("trace-42.a_b"),
        "forwarded to the vendor"
    );
    let long = "x".repeat(129);
    for bad in ["has space", "semi;colon", long.as_str()] {
        let res = h
            .request(
                awc::http::Method::GET,
                "/healthz",
                None,
                &[("X-Request-Id", bad)],
                None,
            )
            .await;
        let id = res.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    h.stop().await;
}

#[actix_rt::test]
async fn bots_endpoint_lists_what_the_key_may_read() {
    let h = Harness::start().await;
    let all = h.get("/api/v1/bots").await.ok();
    assert_eq!(
        all,
        serde_json::json!({"data": [
            {"name": "helpdesk", "provider": "chatling"},
            {"name": "migrating", "provider": "chatbase,chatling"},
            {"name": "sales", "provider": "chatzuri"},
            {"name": "sales-legacy", "provider": "chatzuri"},
            {"name": "support", "provider": "chatbase"},
            {"name": "support-v2", "provider": "chatbase_v2"},
        ]})
    );
    let scoped = h
        .get_as(Some(chatgate::demo::SCOPED_KEY), "/api/v1/bots")
        .await
        .ok();
    assert_eq!(
        scoped,
        serde_json::json!({"data": [{"name": "support", "provider": "chatbase"}]})
    );
    h.get_as(None, "/api/v1/bots")
        .await
        .expect_error(401, "unauthorized");
    h.stop().await;
}

#[actix_rt::test]
async fn health_endpoints_need_no_key() {
    let h = Harness::start().await;
    assert_eq!(
        h.get_as(None, "/healthz").await.ok(),
        serde_json::json!({"status": "ok"})
    );
    assert_eq!(h.get_as(None, "/readyz").await.ok()["status"], "ready");
    h.stop().await;
}
