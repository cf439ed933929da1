//! Chatling API v2: list conversations, retrieve one, list its messages.
//!
//! Every answer is Chatling's `{"status": …, "data": …}` envelope. The list's page size
//! is the server's (no `size` parameter exists) and is configurable on the state, so the
//! gateway's "learn `per_page` from the answer" logic can be tested against a change.
//! Bad parameters answer 422 (Chatling does not document them; 422 is what its Laravel
//! stack answers for validation errors).

use actix_web::http::{Method, StatusCode};

use super::answer::{join_json, Answer};
use super::params::{first, page_offset, positive_int, query_pairs};
use super::state::EmulatorState;
use super::Vendor;

/// `sort` values Chatling documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// Newest first (the default).
    DateDesc,
    /// Oldest first: exactly the reverse of `date_desc`, ties included, so reading one
    /// order backwards always gives the other.
    DateAsc,
}

/// Answers a Chatling request whose bearer key was already accepted. `sub_path` is the
/// path below `/chatling/v2`.
pub(crate) fn answer(
    state: &EmulatorState,
    method: &Method,
    sub_path: &str,
    query: &str,
) -> Answer {
    let segments: Vec<String> = sub_path
        .strip_prefix('/')
        .unwrap_or(sub_path)
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let route = match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["chatbots", bot, "conversations"] if !bot.is_empty() => Route::List(bot.to_string()),
        ["chatbots", bot, "conversations", id] if !bot.is_empty() && !id.is_empty() => {
            Route::Retrieve(bot.to_string(), id.to_string())
        }
        ["chatbots", bot, "conversations", id, "messages"] if !bot.is_empty() && !id.is_empty() => {
            Route::Messages(bot.to_string(), id.to_string())
        }
        _ => return error(StatusCode::NOT_FOUND, "Not found"),
    };
    if method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    match route {
        Route::List(bot) => list(state, &bot, query),
        Route::Retrieve(bot, id) => retrieve(state, &bot, &id),
        Route::Messages(bot, id) => messages(state, &bot, &id, query),
    }
}

enum Route {
    List(String),
    Retrieve(String, String),
    Messages(String, String),
}

fn error(status: StatusCode, message: &str) -> Answer {
    Answer::error(Vendor::Chatling, status, message)
}

/// `page` (integer ≥ 1, default 1) and `sort` (default `date_desc`); anything else in
/// the query is ignored, as Chatling documents no other parameter.
fn page_and_sort(query: &str) -> Result<(u64, Sort), Answer> {
    let pairs = query_pairs(query);
    let page = match first(&pairs, "page") {
        None => 1,
        Some(v) => positive_int(v).ok_or_else(|| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("The page must be an integer of at least 1, got {v:?}."),
            )
        })?,
    };
    let sort = match first(&pairs, "sort") {
        None | Some("date_desc") => Sort::DateDesc,
        Some("date_asc") => Sort::DateAsc,
        Some(v) => {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("The sort must be one of date_desc, date_asc, got {v:?}."),
            ))
        }
    };
    Ok((page, sort))
}

/// Page `page` of `total` items in `sort` order, `per_page` at a time: the indices into
/// the newest-first list, plus `last_page` (at least 1).
fn window(total: usize, page: u64, per_page: u32, sort: Sort) -> (Vec<usize>, u64) {
    let per = u64::from(per_page.max(1));
    let last_page = (total as u64).div_ceil(per).max(1);
    let start = page_offset(page, per);
    let end = start.saturating_add(per as usize).min(total);
    let indices = (start.min(total)..end).map(|i| match sort {
        Sort::DateDesc => i,
        Sort::DateAsc => total - 1 - i,
    });
    (indices.collect(), last_page)
}

fn pages_json(page: u64, last_page: u64, per_page: u32) -> String {
    format!(
        r#"{{"status":"success","data":{{"pages":{{"current_page":{page},"last_page":{last_page},"per_page":{per_page}}},"#
    )
}

fn list(state: &EmulatorState, bot: &str, query: &str) -> Answer {
    let (page, sort) = match page_and_sort(query) {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    let Some(data) = state.bot(Vendor::Chatling, bot) else {
        return error(StatusCode::NOT_FOUND, "Chatbot not found");
    };
    let per_page = state.chatling_per_page();
    let (indices, last_page) = window(data.convs.len(), page, per_page, sort);
    let items = indices
        .into_iter()
        .filter_map(|i| data.convs.get(i))
        .map(|c| &c.json);
    let open = pages_json(page, last_page, per_page) + r#""conversations":["#;
    Answer::ok(join_json(&open, items, "]}}"))
}

fn retrieve(state: &EmulatorState, bot: &str, id: &str) -> Answer {
    let Some(data) = state.bot(Vendor::Chatling, bot) else {
        return error(StatusCode::NOT_FOUND, "Chatbot not found");
    };
    let Some(conv) = data.find(id) else {
        return error(StatusCode::NOT_FOUND, "Conversation not found");
    };
    Answer::ok(join_json(
        r#"{"status":"success","data":"#,
        [&conv.json],
        "}",
    ))
}

fn messages(state: &EmulatorState, bot: &str, id: &str, query: &str) -> Answer {
    let (page, sort) = match page_and_sort(query) {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    let Some(data) = state.bot(Vendor::Chatling, bot) else {
        return error(StatusCode::NOT_FOUND, "Chatbot not found");
    };
    let Some(conv) = data.find(id) else {
        return error(StatusCode::NOT_FOUND, "Conversation not found");
    };
    let per_page = state.chatling_messages_per_page();
    let (indices, last_page) = window(conv.messages_desc.len(), page, per_page, sort);
    let items = indices
        .into_iter()
        .filter_map(|i| conv.messages_desc.get(i));
    let open = pages_json(page, last_page, per_page) + r#""messages":["#;
    Answer::ok(join_json(&open, items, "]}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{CHATLING_LONG_MESSAGES, CHATLING_TWO_PAGE_MESSAGES};
    use crate::testutil::{call, call_json, spawn, Call};
    use crate::{CHATLING_BOT, CHATLING_KEY};
    use serde_json::{json, Value};

    fn get(path: &str) -> Call {
        Call::get(Vendor::Chatling, path).key(CHATLING_KEY)
    }

    fn list_path(query: &str) -> String {
        format!("/chatbots/{CHATLING_BOT}/conversations?{query}")
    }

    fn pages(current: u64, last: u64, per: u64) -> Value {
        json!({"current_page": current, "last_page": last, "per_page": per})
    }

    #[test]
    fn window_pages_both_ways() {
        assert_eq!(window(12, 1, 5, Sort::DateDesc), (vec![0, 1, 2, 3, 4], 3));
        assert_eq!(window(12, 3, 5, Sort::DateDesc), (vec![10, 11], 3));
        assert_eq!(window(12, 4, 5, Sort::DateDesc), (vec![], 3));
        assert_eq!(window(12, 1, 5, Sort::DateAsc), (vec![11, 10, 9, 8, 7], 3));
        assert_eq!(window(12, 3, 5, Sort::DateAsc), (vec![1, 0], 3));
        assert_eq!(window(0, 1, 5, Sort::DateDesc), (vec![], 1));
        assert_eq!(window(10, 2, 5, Sort::DateDesc).1, 2);
        assert_eq!(window(3, u64::MAX, 5, Sort::DateAsc), (vec![], 1));
    }

    #[actix_web::test]
    async fn list_uses_the_server_page_size_and_envelope() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatling, CHATLING_BOT);
        let (status, body) = call_json(&server, get(&list_path(""))).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"status": "success", "data": {"pages": pages(1, 17, 5), "conversations": all[..5]}})
        );
        let (_, body) = call_json(&server, get(&list_path("page=17&sort=date_desc&size=50"))).await;
        assert_eq!(body["data"]["pages"], pages(17, 17, 5));
        assert_eq!(
            body["data"]["conversations"],
            Value::Array(all[80..].to_vec())
        );
        let (_, body) = call_json(&server, get(&list_path("page=18"))).await;
        assert_eq!(body["data"]["pages"], pages(18, 17, 5));
        assert_eq!(body["data"]["conversations"], json!([]));

        let (_, body) = call_json(&server, get(&list_path("sort=date_asc"))).await;
        let oldest: Vec<Value> = all.iter().rev().take(5).cloned().collect();
        assert_eq!(body["data"]["conversations"], Value::Array(oldest));
        server.stop().await;
    }

    #[actix_web::test]
    async fn list_page_size_follows_the_configured_per_page() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatling, CHATLING_BOT);
        server.state.set_chatling_per_page(25);
        let (_, body) = call_json(&server, get(&list_path("page=2"))).await;
        assert_eq!(body["data"]["pages"], pages(2, 4, 25));
        assert_eq!(
            body["data"]["conversations"],
            Value::Array(all[25..50].to_vec())
        );
        let (_, body) = call_json(&server, get(&list_path("page=4"))).await;
        assert_eq!(
            body["data"]["conversations"].as_array().map(Vec::len),
            Some(8)
        );
        server.state.set_chatling_per_page(100);
        let (_, body) = call_json(&server, get(&list_path(""))).await;
        assert_eq!(body["data"]["pages"], pages(1, 1, 100));
        assert_eq!(body["data"]["conversations"], Value::Array(all));
        server.stop().await;
    }

    #[actix_web::test]
    async fn equal_created_at_keeps_one_order_in_both_directions() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatling, CHATLING_BOT);
        server.state.set_chatling_per_page(100);
        let (_, body) = call_json(&server, get(&list_path("sort=date_asc"))).await;
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(body["data"]["conversations"], Value::Array(reversed));
        assert!(all
            .windows(2)
            .any(|w| w[0]["created_at"] == w[1]["created_at"]));
        server.stop().await;
    }

    #[actix_web::test]
    async fn list_errors_use_the_chatling_envelope() {
        let server = spawn().await;
        for (path, status, message) in [
            (
                list_path("page=0"),
                422,
                "The page must be an integer of at least 1, got \"0\".",
            ),
            (
                list_path("page=x"),
                422,
                "The page must be an integer of at least 1, got \"x\".",
            ),
            (
                list_path("sort=newest"),
                422,
                "The sort must be one of date_desc, date_asc, got \"newest\".",
            ),
            (
                "/chatbots/999/conversations".to_owned(),
                404,
                "Chatbot not found",
            ),
            (
                format!("/chatbots/{CHATLING_BOT}/conversations/1/nope"),
                404,
                "Not found",
            ),
            ("/conversations".to_owned(), 404, "Not found"),
        ] {
            let (got, body) = call_json(&server, get(&path)).await;
            assert_eq!(
                (got, body),
                (status, json!({"status": "error", "message": message})),
                "{path}"
            );
        }
        let (status, body) = call_json(
            &server,
            Call::get(Vendor::Chatling, &list_path("")).key("nope"),
        )
        .await;
        assert_eq!(
            (status, body),
            (401, json!({"status": "error", "message": "Unauthorized"}))
        );
        let response = call(
            &server,
            Call::post(Vendor::Chatling, &list_path(""), "{}").key(CHATLING_KEY),
        )
        .await;
        assert_eq!(response.status, 405);
        server.stop().await;
    }

    #[actix_web::test]
    async fn retrieve_returns_the_stored_object() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatling, CHATLING_BOT);
        let conv = &all[7];
        let id = conv["id"].as_str().expect("ids are strings");
        let (status, body) = call_json(
            &server,
            get(&format!(
                "/chatbots/{CHATLING_BOT}/conversations/{id}?page=3"
            )),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({"status": "success", "data": conv}));
        let (status, body) = call_json(
            &server,
            get(&format!(
                "/chatbots/{CHATLING_BOT}/conversations/0000000000"
            )),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                404,
                json!({"status": "error", "message": "Conversation not found"})
            )
        );
        server.stop().await;
    }

    #[actix_web::test]
    async fn messages_paginate_newest_first_and_reverse_for_date_asc() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatling, CHATLING_BOT);
        let long = all
            .iter()
            .find(|c| c["messages"].as_array().map(Vec::len) == Some(CHATLING_LONG_MESSAGES))
            .expect("the data set has a long conversation");
        let stored = long["messages"].as_array().cloned().unwrap_or_default();
        let path = format!(
            "/chatbots/{CHATLING_BOT}/conversations/{}/messages",
            long["id"].as_str().unwrap_or("")
        );

        let (_, p1) = call_json(&server, get(&path)).await;
        assert_eq!(p1["status"], "success");
        assert_eq!(p1["data"]["pages"], pages(1, 3, 15));
        assert_eq!(p1["data"]["messages"], Value::Array(stored[..15].to_vec()));
        let (_, p3) = call_json(&server, get(&format!("{path}?page=3"))).await;
        assert_eq!(p3["data"]["messages"], Value::Array(stored[30..].to_vec()));

        let mut oldest_first = stored.clone();
        oldest_first.reverse();
        let (_, asc) = call_json(&server, get(&format!("{path}?sort=date_asc&page=2"))).await;
        assert_eq!(
            asc["data"]["messages"],
            Value::Array(oldest_first[15..30].to_vec())
        );

        server.state.set_chatling_messages_per_page(10);
        let (_, p4) = call_json(&server, get(&format!("{path}?page=4"))).await;
        assert_eq!(p4["data"]["pages"], pages(4, 4, 10));
        assert_eq!(p4["data"]["messages"], Value::Array(stored[30..].to_vec()));
        server.state.set_chatling_messages_per_page(15);

        let two = all
            .iter()
            .find(|c| c["messages"].as_array().map(Vec::len) == Some(CHATLING_TWO_PAGE_MESSAGES))
            .and_then(|c| c["id"].as_str())
            .expect("the data set has a two-page conversation");
        let (_, p2) = call_json(
            &server,
            get(&format!(
                "/chatbots/{CHATLING_BOT}/conversations/{two}/messages?page=2"
            )),
        )
        .await;
        assert_eq!(p2["data"]["pages"], pages(2, 2, 15));
        assert_eq!(p2["data"]["messages"].as_array().map(Vec::len), Some(2));

        let empty = all
            .iter()
            .find(|c| c["messages"] == json!([]))
            .and_then(|c| c["id"].as_str())
            .expect("the data set has an empty conversation");
        let (_, body) = call_json(
            &server,
            get(&format!(
                "/chatbots/{CHATLING_BOT}/conversations/{empty}/messages"
            )),
        )
        .await;
        assert_eq!(
            body,
            json!({"status": "success", "data": {"pages": pages(1, 1, 15), "messages": []}})
        );
        let (status, _) = call_json(
            &server,
            get(&format!(
                "/chatbots/{CHATLING_BOT}/conversations/{empty}/messages?sort=up"
            )),
        )
        .await;
        assert_eq!(status, 422);
        server.stop().await;
    }

    #[actix_web::test]
    async fn rate_limit_answers_429_without_retry_after() {
        let server = spawn().await;
        server.state.set_chatling_rate_limit(Some(0));
        let response = call(&server, get(&list_path(""))).await;
        assert_eq!(response.status, 429);
        assert_eq!(
            response.body.as_ref(),
            br#"{"status":"error","message":"Too many requests"}"#
        );
        assert_eq!(response.retry_after, None);
        assert!(
            !response
                .header_names
                .iter()
                .any(|h| h.contains("ratelimit") || h.contains("rate-limit")),
            "{:?}",
            response.header_names
        );
        // Other vendors are not limited.
        let (status, _) = call_json(
            &server,
            Call::get(Vendor::Chatbase, "/get-conversations?chatbotId=cb-support")
                .key(crate::CHATBASE_KEY),
        )
        .await;
        assert_eq!(status, 200);

        // n calls pass, the next one in the same minute does not.
        server.state.set_chatling_rate_limit(Some(2));
        let minute = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() / 60)
                .unwrap_or(0)
        };
        let before = minute();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(call(&server, get(&list_path(""))).await.status);
        }
        if minute() == before {
            assert_eq!(statuses, [200, 200, 429]);
        }
        server.state.set_chatling_rate_limit(None);
        assert_eq!(call(&server, get(&list_path(""))).await.status, 200);
        server.stop().await;
    }
}
