//! Chatbase v1 and Chatzuri `get-conversations`: one documented shape, two vendors.
//!
//! They differ only in labels and in how the bot is named: Chatbase `GET ?chatbotId=`,
//! Chatzuri `GET ?agentId=` (current docs) or `POST` with a JSON body holding
//! `chatbotId` (older docs). Parameters are validated before the bot is looked up, so a
//! bad date is a 400 even for an unknown bot.

use actix_web::http::{Method, StatusCode};
use chrono::NaiveDate;
use serde_json::Value;

use super::answer::{join_json, Answer};
use super::params::{first, page_offset, positive_int, query_pairs, strict_date};
use super::state::EmulatorState;
use super::store::StoredConv;
use super::Vendor;

/// The only path below the vendor prefix.
const LIST_PATH: &str = "/get-conversations";
/// Largest `size` the vendors accept.
const MAX_SIZE: u64 = 100;
const DEFAULT_SIZE: u64 = 10;

/// A validated list request.
#[derive(Debug, PartialEq, Eq)]
struct ListParams {
    bot: String,
    /// Lowercased, trimmed labels; `None` = no filter.
    sources: Option<Vec<String>>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    page: u64,
    size: u64,
}

/// Answers a Chatbase or Chatzuri request whose bearer key was already accepted.
/// `sub_path` is the path below the vendor prefix.
pub(crate) fn answer(
    state: &EmulatorState,
    vendor: Vendor,
    method: &Method,
    sub_path: &str,
    query: &str,
    body: &[u8],
) -> Answer {
    if sub_path != LIST_PATH {
        return Answer::error(vendor, StatusCode::NOT_FOUND, "Not found");
    }
    let params = match (vendor, method) {
        (Vendor::Chatbase, &Method::GET) => from_query(query, "chatbotId"),
        (Vendor::Chatzuri, &Method::GET) => from_query(query, "agentId"),
        (Vendor::Chatzuri, &Method::POST) => from_body(body),
        _ => return Answer::error(vendor, StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    };
    match params {
        Ok(params) => list(state, vendor, &params),
        Err(message) => Answer::error(vendor, StatusCode::BAD_REQUEST, &message),
    }
}

fn list(state: &EmulatorState, vendor: Vendor, p: &ListParams) -> Answer {
    let Some(data) = state.bot(vendor, &p.bot) else {
        let message = match vendor {
            Vendor::Chatzuri => "Invalid agent id",
            Vendor::Chatbase | Vendor::Chatling | Vendor::ChatbaseV2 => "Chatbot not found",
        };
        return Answer::error(vendor, StatusCode::NOT_FOUND, message);
    };
    let page = data
        .convs
        .iter()
        .filter(|c| matches(c, p))
        .skip(page_offset(p.page, p.size))
        .take(usize::try_from(p.size).unwrap_or(usize::MAX))
        .map(|c| &c.json);
    Answer::ok(join_json(r#"{"data":["#, page, "]}"))
}

/// Source filter (labels compared case-insensitively, unknown labels match nothing) and
/// date filter (inclusive, on the UTC date of `created_at`).
fn matches(c: &StoredConv, p: &ListParams) -> bool {
    if let Some(sources) = &p.sources {
        if !sources.contains(&c.source_key) {
            return false;
        }
    }
    if p.start.is_some() || p.end.is_some() {
        let Some(date) = c.created_date() else {
            return false;
        };
        if p.start.is_some_and(|s| date < s) || p.end.is_some_and(|e| date > e) {
            return false;
        }
    }
    true
}

/// The raw (string) parameters, wherever they came from.
#[derive(Default)]
struct RawParams<'a> {
    bot: Option<&'a str>,
    sources: Option<&'a str>,
    start: Option<&'a str>,
    end: Option<&'a str>,
    page: Option<String>,
    size: Option<String>,
}

fn from_query(query: &str, id_param: &str) -> Result<ListParams, String> {
    let pairs = query_pairs(query);
    let raw = RawParams {
        bot: first(&pairs, id_param),
        sources: first(&pairs, "filteredSources"),
        start: first(&pairs, "startDate"),
        end: first(&pairs, "endDate"),
        page: first(&pairs, "page").map(str::to_owned),
        size: first(&pairs, "size").map(str::to_owned),
    };
    validate(raw, id_param)
}

/// The legacy Chatzuri body: `chatbotId` and the same optional fields; the docs type
/// `page`/`size` as strings, so numbers and numeric strings are both accepted.
fn from_body(body: &[u8]) -> Result<ListParams, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON body: {e}"))?;
    let Value::Object(obj) = &value else {
        return Err("Invalid JSON body: expected an object".to_owned());
    };
    let string = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{name} must be a string")),
        }
    };
    let number = |name: &str| -> Result<Option<String>, String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("Invalid {name}: expected an integer")),
        }
    };
    let raw = RawParams {
        bot: string("chatbotId")?,
        sources: string("filteredSources")?,
        start: string("startDate")?,
        end: string("endDate")?,
        page: number("page")?,
        size: number("size")?,
    };
    validate(raw, "chatbotId")
}

fn validate(raw: RawParams<'_>, id_param: &str) -> Result<ListParams, String> {
    let bot = raw
        .bot
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("{id_param} is required"))?;
    let date = |name: &str, value: Option<&str>| -> Result<Option<NaiveDate>, String> {
        value
            .map(|v| {
                strict_date(v)
                    .ok_or_else(|| format!("Invalid date {name}: expected YYYY-MM-DD, got {v:?}"))
            })
            .transpose()
    };
    let start = date("startDate", raw.start)?;
    let end = date("endDate", raw.end)?;
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err("Invalid date range: startDate is after endDate".to_owned());
        }
    }
    let page = match raw.page.as_deref() {
        None => 1,
        Some(v) => positive_int(v)
            .ok_or_else(|| format!("Invalid page: expected an integer of at least 1, got {v:?}"))?,
    };
    let size = match raw.size.as_deref() {
        None => DEFAULT_SIZE,
        Some(v) => positive_int(v).filter(|n| *n <= MAX_SIZE).ok_or_else(|| {
            format!("Invalid size: expected an integer from 1 to {MAX_SIZE}, got {v:?}")
        })?,
    };
    // An empty `filteredSources` (or only commas) is treated as no filter.
    let sources: Vec<String> = raw
        .sources
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(ListParams {
        bot: bot.to_owned(),
        sources: (!sources.is_empty()).then_some(sources),
        start,
        end,
        page,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{call, call_json, spawn, Call};
    use crate::{
        EmulatorState, CHATBASE_BOT, CHATBASE_EMPTY_BOT, CHATBASE_KEY, CHATZURI_BOT, CHATZURI_KEY,
    };
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn ids(body: &Value) -> Vec<String> {
        body["data"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn expected_ids(convs: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
        convs
            .iter()
            .filter(|c| keep(c))
            .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn utc_date(c: &Value) -> Option<NaiveDate> {
        c["created_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc).date_naive())
    }

    fn chatbase(query: &str) -> Call {
        Call::get(Vendor::Chatbase, &format!("/get-conversations?{query}")).key(CHATBASE_KEY)
    }

    #[test]
    fn validate_reports_each_bad_parameter() {
        let q = |s: &str| from_query(s, "chatbotId");
        let err = |s: &str| q(s).err().unwrap_or_default();
        assert_eq!(err(""), "chatbotId is required");
        assert_eq!(err("chatbotId="), "chatbotId is required");
        assert_eq!(
            err("chatbotId=a&startDate=2024-7-01"),
            r#"Invalid date startDate: expected YYYY-MM-DD, got "2024-7-01""#
        );
        assert_eq!(
            err("chatbotId=a&endDate=2024-02-30"),
            r#"Invalid date endDate: expected YYYY-MM-DD, got "2024-02-30""#
        );
        assert_eq!(
            err("chatbotId=a&startDate=2024-02-02&endDate=2024-02-01"),
            "Invalid date range: startDate is after endDate"
        );
        assert_eq!(
            err("chatbotId=a&page=0"),
            r#"Invalid page: expected an integer of at least 1, got "0""#
        );
        assert_eq!(
            err("chatbotId=a&size=101"),
            r#"Invalid size: expected an integer from 1 to 100, got "101""#
        );
        assert_eq!(
            err("chatbotId=a&size=0"),
            r#"Invalid size: expected an integer from 1 to 100, got "0""#
        );
        assert_eq!(
            q("chatbotId=a&filteredSources=%20API%20,,whatsapp&start=x&unknown=1"),
            Ok(ListParams {
                bot: "a".into(),
                sources: Some(vec!["api".into(), "whatsapp".into()]),
                start: None,
                end: None,
                page: 1,
                size: 10,
            })
        );
    }

    #[actix_web::test]
    async fn chatbase_default_page_is_the_ten_newest() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatbase, CHATBASE_BOT);
        let (status, body) = call_json(&server, chatbase("chatbotId=cb-support")).await;
        assert_eq!(status, 200);
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only `data`");
        assert_eq!(body["data"], Value::Array(all[..10].to_vec()));
        // Newest first by instant, whatever the offset notation.
        let instants: Vec<DateTime<Utc>> = all
            .iter()
            .filter_map(|c| c["created_at"].as_str())
            .filter_map(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .collect();
        assert_eq!(instants.len(), 137);
        assert!(instants.windows(2).all(|w| w[0] >= w[1]));
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatbase_pages_through_all_137() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatbase, CHATBASE_BOT);
        let all_ids = expected_ids(&all, |_| true);
        let (_, p14) = call_json(&server, chatbase("chatbotId=cb-support&page=14&size=10")).await;
        assert_eq!(ids(&p14), all_ids[130..]);
        let (_, p15) = call_json(&server, chatbase("chatbotId=cb-support&page=15")).await;
        assert_eq!(p15, json!({"data": []}));
        let (_, p2) = call_json(&server, chatbase("chatbotId=cb-support&page=2&size=100")).await;
        assert_eq!(ids(&p2), all_ids[100..]);
        let (_, huge) = call_json(&server, chatbase("chatbotId=cb-support&page=99999999999")).await;
        assert_eq!(huge, json!({"data": []}));
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatbase_filters_by_utc_date_inclusively() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatbase, CHATBASE_BOT);
        let (start, end) = (
            NaiveDate::from_ymd_opt(2024, 3, 1),
            NaiveDate::from_ymd_opt(2024, 5, 31),
        );
        let want = expected_ids(&all, |c| utc_date(c) >= start && utc_date(c) <= end);
        assert!(
            want.len() > 10,
            "the window must span pages: {}",
            want.len()
        );
        let (_, body) = call_json(
            &server,
            chatbase("chatbotId=cb-support&startDate=2024-03-01&endDate=2024-05-31&size=100"),
        )
        .await;
        assert_eq!(ids(&body), want);

        // A single day: the conversations whose *UTC* date it is.
        let day = all
            .iter()
            .find(|c| {
                c["created_at"]
                    .as_str()
                    .is_some_and(|s| s.ends_with("+02:00"))
            })
            .and_then(utc_date)
            .expect("the data set has +02:00 timestamps");
        let want = expected_ids(&all, |c| utc_date(c) == Some(day));
        let q = format!("chatbotId=cb-support&startDate={day}&endDate={day}");
        let (_, body) = call_json(&server, chatbase(&q)).await;
        assert_eq!(ids(&body), want);
        assert!(!want.is_empty());
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatbase_filters_sources_in_either_spelling() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatbase, CHATBASE_BOT);
        let source = |c: &Value| c["source"].as_str().unwrap_or("").to_owned();
        let want = expected_ids(&all, |c| {
            ["Chatbase site", "website"].contains(&source(c).as_str())
        });
        assert!(want.len() >= 5);
        let (_, body) = call_json(
            &server,
            chatbase("chatbotId=cb-support&filteredSources=chatbase%20SITE&size=100"),
        )
        .await;
        assert_eq!(ids(&body), want);

        let want = expected_ids(&all, |c| {
            ["WhatsApp", "whatsapp", "Slack", "slack"].contains(&source(c).as_str())
        });
        let (_, body) = call_json(
            &server,
            chatbase("chatbotId=cb-support&filteredSources=WhatsApp,Slack&size=100"),
        )
        .await;
        assert_eq!(ids(&body), want);

        // Missing and empty sources count as Unspecified.
        let want = expected_ids(&all, |c| ["Unspecified", ""].contains(&source(c).as_str()));
        let (_, body) = call_json(
            &server,
            chatbase("chatbotId=cb-support&filteredSources=Unspecified&size=100"),
        )
        .await;
        assert_eq!(ids(&body), want);
        assert_eq!(
            want.len(),
            all.iter().filter(|c| source(c) == "Unspecified").count() + 6
        );

        let (_, body) = call_json(
            &server,
            chatbase("chatbotId=cb-support&filteredSources=Bogus"),
        )
        .await;
        assert_eq!(body, json!({"data": []}));
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatbase_rejects_bad_parameters_like_the_vendor() {
        let server = spawn().await;
        let cases = [
            ("", 400, "chatbotId is required"),
            ("agentId=cb-support", 400, "chatbotId is required"),
            ("chatbotId=nope", 404, "Chatbot not found"),
            (
                "chatbotId=cb-support&startDate=2024-3-01",
                400,
                "Invalid date startDate",
            ),
            (
                "chatbotId=cb-support&endDate=2024-02-30",
                400,
                "Invalid date endDate",
            ),
            (
                "chatbotId=cb-support&startDate=2024-03-02&endDate=2024-03-01",
                400,
                "Invalid date range",
            ),
            ("chatbotId=cb-support&page=0", 400, "Invalid page"),
            ("chatbotId=cb-support&page=abc", 400, "Invalid page"),
            ("chatbotId=cb-support&size=0", 400, "Invalid size"),
            ("chatbotId=cb-support&size=101", 400, "Invalid size"),
            ("chatbotId=cb-support&size=1.5", 400, "Invalid size"),
        ];
        for (query, status, message) in cases {
            let (got, body) = call_json(&server, chatbase(query)).await;
            assert_eq!(got, status, "{query}");
            let text = body["message"].as_str().unwrap_or_default();
            assert!(text.starts_with(message), "{query}: {text}");
            assert_eq!(
                body.as_object().map(|o| o.len()),
                Some(1),
                "{query}: only `message`"
            );
        }
        let (status, body) = call_json(&server, chatbase("chatbotId=cb-empty")).await;
        assert_eq!((status, body), (200, json!({"data": []})));
        assert!(server
            .state
            .conversations(Vendor::Chatbase, CHATBASE_EMPTY_BOT)
            .is_empty());

        let (status, body) = call_json(
            &server,
            Call::get(Vendor::Chatbase, "/get-conversations?chatbotId=cb-support").key("wrong"),
        )
        .await;
        assert_eq!((status, body), (401, json!({"message": "Unauthorized"})));
        let (status, _) = call_json(
            &server,
            Call::get(Vendor::Chatbase, "/get-conversations?chatbotId=cb-support"),
        )
        .await;
        assert_eq!(status, 401, "no key at all");
        let (status, body) = call_json(
            &server,
            Call::post(
                Vendor::Chatbase,
                "/get-conversations",
                r#"{"chatbotId":"cb-support"}"#,
            )
            .key(CHATBASE_KEY),
        )
        .await;
        assert_eq!(
            (status, body),
            (405, json!({"message": "Method not allowed"}))
        );
        let (status, _) = call_json(
            &server,
            Call::get(Vendor::Chatbase, "/other").key(CHATBASE_KEY),
        )
        .await;
        assert_eq!(status, 404);
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatzuri_current_dialect_uses_agent_id() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatzuri, CHATZURI_BOT);
        let get = |q: &str| {
            Call::get(Vendor::Chatzuri, &format!("/get-conversations?{q}")).key(CHATZURI_KEY)
        };
        let (status, body) = call_json(&server, get("agentId=cz-sales&page=2&size=20")).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], Value::Array(all[20..40].to_vec()));
        let (status, body) = call_json(&server, get("chatbotId=cz-sales")).await;
        assert_eq!(
            (status, body),
            (400, json!({"message": "agentId is required"}))
        );
        let (status, body) = call_json(&server, get("agentId=cb-support")).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Invalid agent id"}))
        );
        let (status, _) = call_json(
            &server,
            Call::get(Vendor::Chatzuri, "/get-conversations?agentId=cz-sales").key(CHATBASE_KEY),
        )
        .await;
        assert_eq!(status, 401, "another vendor's key is not accepted");
        let (_, body) = call_json(
            &server,
            get("agentId=cz-sales&filteredSources=chatzuri%20site"),
        )
        .await;
        let want = expected_ids(&all, |c| c["source"] == "Chatzuri site");
        assert_eq!(ids(&body), want[..want.len().min(10)]);
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatzuri_legacy_dialect_reads_a_json_body() {
        let server = spawn().await;
        let all = server.state.conversations(Vendor::Chatzuri, CHATZURI_BOT);
        let post =
            |body: &str| Call::post(Vendor::Chatzuri, "/get-conversations", body).key(CHATZURI_KEY);
        for body in [
            r#"{"chatbotId":"cz-sales","page":"3","size":"5"}"#,
            r#"{"chatbotId":"cz-sales","page":3,"size":5,"startDate":null}"#,
        ] {
            let (status, got) = call_json(&server, post(body)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(got["data"], Value::Array(all[10..15].to_vec()), "{body}");
        }
        let (_, got) = call_json(
            &server,
            post(r#"{"chatbotId":"cz-sales","startDate":"2024-06-01","endDate":"2024-06-30","filteredSources":"API,Slack","size":100}"#),
        )
        .await;
        let june = (
            NaiveDate::from_ymd_opt(2024, 6, 1),
            NaiveDate::from_ymd_opt(2024, 6, 30),
        );
        let want = expected_ids(&all, |c| {
            (c["source"] == "API" || c["source"] == "Slack")
                && utc_date(c) >= june.0
                && utc_date(c) <= june.1
        });
        assert_eq!(ids(&got), want);

        let cases = [
            ("{", "Invalid JSON body"),
            ("[]", "Invalid JSON body: expected an object"),
            (r#"{"agentId":"cz-sales"}"#, "chatbotId is required"),
            (r#"{"chatbotId":"cz-sales","page":1.5}"#, "Invalid page"),
            (r#"{"chatbotId":"cz-sales","size":true}"#, "Invalid size"),
            (
                r#"{"chatbotId":"cz-sales","startDate":"2024-6-01"}"#,
                "Invalid date startDate",
            ),
            (
                r#"{"chatbotId":"cz-sales","filteredSources":["API"]}"#,
                "filteredSources must be a string",
            ),
        ];
        for (body, message) in cases {
            let (status, got) = call_json(&server, post(body)).await;
            assert_eq!(status, 400, "{body}");
            let text = got["message"].as_str().unwrap_or_default();
            assert!(text.starts_with(message), "{body}: {text}");
        }
        let (status, got) = call_json(&server, post(r#"{"chatbotId":"nope"}"#)).await;
        assert_eq!((status, got), (404, json!({"message": "Invalid agent id"})));

        let recorded = server.state.requests();
        let last = recorded.last().expect("requests are recorded");
        assert_eq!(last.method, "POST");
        assert_eq!(last.body.as_deref(), Some(r#"{"chatbotId":"nope"}"#));
        server.stop().await;
    }

    #[actix_web::test]
    async fn custom_data_sets_are_served_newest_first() {
        let server = spawn().await;
        server.state.set_conversations(
            Vendor::Chatbase,
            "custom",
            vec![
                json!({"id": "a", "created_at": "2024-01-01T00:00:00Z", "source": "API", "messages": []}),
                json!({"id": "b", "created_at": "2024-01-02T00:00:00Z", "messages": []}),
                json!({"id": "c", "created_at": "2024-01-01T00:00:00Z", "messages": []}),
            ],
        );
        let (_, body) = call_json(&server, chatbase("chatbotId=custom")).await;
        assert_eq!(ids(&body), ["b", "a", "c"]);
        let (_, body) = call_json(&server, chatbase("chatbotId=custom&filteredSources=api")).await;
        assert_eq!(ids(&body), ["a"]);
        let response = call(&server, chatbase("chatbotId=custom")).await;
        assert_eq!(response.content_type.as_deref(), Some("application/json"));
        server.stop().await;
    }

    #[test]
    fn state_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EmulatorState>();
    }
}
