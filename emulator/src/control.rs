//! The HTTP control API under `/_emulator/`, for processes that cannot hold the Rust
//! [`EmulatorState`] (a benchmark script, an integration test driving the binary).
//! It is not a vendor endpoint: its requests are never recorded or faulted.
//!
//! | request | effect |
//! |---|---|
//! | `POST /_emulator/faults` + a [`Fault`] | add a fault → 204 |
//! | `DELETE /_emulator/faults` | clear faults → 204 |
//! | `GET /_emulator/requests` | `{"requests": […], "counts": {"chatbase": n, …}}`; each request has `received_ms`, its arrival since the emulator started |
//! | `DELETE /_emulator/requests` | clear the log and counts → 204 |
//! | `PUT /_emulator/chatling` + `{"per_page", "messages_per_page", "rate_limit_per_minute"}` | change Chatling settings (absent = unchanged, `rate_limit_per_minute: null` = off) → 204 |
//! | `PUT /_emulator/chatbase_v2` + `{"rate_limit_per_10s"}` | Chatbase v2's sliding-window limit (`null` = off; the documented value is 100) → 204 |
//!
//! A body that does not parse answers 400 `{"message": "…"}`.

use actix_web::http::header;
use actix_web::{web, HttpResponse, Scope};
use bytes::Bytes;
use serde::{Deserialize, Deserializer};

use super::answer::JSON;
use super::faults::Fault;
use super::state::EmulatorState;
use super::Vendor;

/// Largest control request body (a fault carrying a large vendor answer).
const CONTROL_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The `/_emulator` scope.
pub(crate) fn scope() -> Scope {
    web::scope("/_emulator")
        // A fault's body may be a whole hostile vendor answer of many MiB.
        .app_data(web::PayloadConfig::new(CONTROL_BODY_LIMIT))
        .service(
            web::resource("/faults")
                .route(web::post().to(add_fault))
                .route(web::delete().to(clear_faults)),
        )
        .service(
            web::resource("/requests")
                .route(web::get().to(requests))
                .route(web::delete().to(clear_requests)),
        )
        .service(web::resource("/chatling").route(web::put().to(chatling_settings)))
        .service(web::resource("/chatbase_v2").route(web::put().to(chatbase_v2_settings)))
}

fn bad_request(message: String) -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((header::CONTENT_TYPE, JSON))
        .body(serde_json::json!({ "message": message }).to_string())
}

async fn add_fault(state: web::Data<EmulatorState>, body: Bytes) -> HttpResponse {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            state.add_fault(fault);
            HttpResponse::NoContent().finish()
        }
        Err(e) => bad_request(format!("invalid fault: {e}")),
    }
}

async fn clear_faults(state: web::Data<EmulatorState>) -> HttpResponse {
    state.clear_faults();
    HttpResponse::NoContent().finish()
}

async fn requests(state: web::Data<EmulatorState>) -> HttpResponse {
    let counts: serde_json::Map<String, serde_json::Value> = Vendor::ALL
        .into_iter()
        .map(|v| (v.as_str().to_owned(), state.request_count(v).into()))
        .collect();
    let body = serde_json::json!({ "requests": state.requests(), "counts": counts });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, JSON))
        .body(body.to_string())
}

async fn clear_requests(state: web::Data<EmulatorState>) -> HttpResponse {
    state.clear_requests();
    HttpResponse::NoContent().finish()
}

/// `PUT /_emulator/chatling` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatlingSettings {
    /// List page size; absent = unchanged; must be ≥ 1.
    #[serde(default)]
    per_page: Option<u32>,
    /// Messages page size; absent = unchanged; must be ≥ 1.
    #[serde(default)]
    messages_per_page: Option<u32>,
    /// Absent = unchanged, `null` = no limit, `n` = n calls per minute.
    #[serde(default, deserialize_with = "present")]
    rate_limit_per_minute: Option<Option<u32>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

async fn chatling_settings(state: web::Data<EmulatorState>, body: Bytes) -> HttpResponse {
    let settings: ChatlingSettings = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad_request(format!("invalid chatling settings: {e}")),
    };
    if settings.per_page == Some(0) || settings.messages_per_page == Some(0) {
        return bad_request("per_page and messages_per_page must be at least 1".to_owned());
    }
    if let Some(n) = settings.per_page {
        state.set_chatling_per_page(n);
    }
    if let Some(n) = settings.messages_per_page {
        state.set_chatling_messages_per_page(n);
    }
    if let Some(limit) = settings.rate_limit_per_minute {
        state.set_chatling_rate_limit(limit);
    }
    HttpResponse::NoContent().finish()
}

/// `PUT /_emulator/chatbase_v2` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatbaseV2Settings {
    /// Absent = unchanged, `null` = no limit, `n` = n requests per sliding 10 s.
    #[serde(default, deserialize_with = "present")]
    rate_limit_per_10s: Option<Option<u32>>,
}

async fn chatbase_v2_settings(state: web::Data<EmulatorState>, body: Bytes) -> HttpResponse {
    match serde_json::from_slice::<ChatbaseV2Settings>(&body) {
        Ok(settings) => {
            if let Some(limit) = settings.rate_limit_per_10s {
                state.set_chatbase_v2_rate_limit(limit);
            }
            HttpResponse::NoContent().finish()
        }
        Err(e) => bad_request(format!("invalid chatbase_v2 settings: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{call, call_json, spawn, Call};
    use crate::{
        Fault, FaultKind, Vendor, CHATBASE_KEY, CHATBASE_V2_BOT, CHATBASE_V2_KEY, CHATLING_BOT,
        CHATLING_KEY,
    };
    use serde_json::json;

    fn chatbase_list() -> Call {
        Call::get(Vendor::Chatbase, "/get-conversations?chatbotId=cb-support").key(CHATBASE_KEY)
    }

    fn chatling_list() -> Call {
        Call::get(
            Vendor::Chatling,
            &format!("/chatbots/{CHATLING_BOT}/conversations"),
        )
        .key(CHATLING_KEY)
    }

    #[actix_web::test]
    async fn faults_can_be_added_and_cleared_over_http() {
        let server = spawn().await;
        let fault = r#"{"vendor":"chatbase","times":1,"kind":{"type":"status","status":502}}"#;
        let response = call(&server, Call::raw("POST", "/_emulator/faults").body(fault)).await;
        assert_eq!(response.status, 204);
        let (status, body) = call_json(&server, chatbase_list()).await;
        assert_eq!(
            (status, body),
            (502, json!({"message": "Injected fault: status 502"}))
        );
        assert_eq!(
            call(&server, chatbase_list()).await.status,
            200,
            "times: 1 is used up"
        );

        let forever = serde_json::to_string(&Fault {
            vendor: None,
            path_contains: Some("/conversations".into()),
            times: None,
            kind: FaultKind::Status {
                status: 500,
                body: Some("boom".into()),
                retry_after: None,
            },
        })
        .expect("faults serialize");
        call(
            &server,
            Call::raw("POST", "/_emulator/faults").body(&forever),
        )
        .await;
        let response = call(&server, chatling_list()).await;
        assert_eq!(
            (response.status, response.body.as_ref()),
            (500, &b"boom"[..])
        );
        assert_eq!(
            call(&server, chatbase_list()).await.status,
            200,
            "path does not match"
        );
        assert_eq!(
            call(&server, Call::raw("DELETE", "/_emulator/faults"))
                .await
                .status,
            204
        );
        assert_eq!(call(&server, chatling_list()).await.status, 200);

        let (status, body) = call_json(
            &server,
            Call::raw("POST", "/_emulator/faults").body(r#"{"kind":{"type":"nope"}}"#),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("invalid fault"));
        server.stop().await;
    }

    #[actix_web::test]
    async fn requests_are_listed_counted_and_cleared_over_http() {
        let server = spawn().await;
        call(&server, chatbase_list().request_id("abc")).await;
        call(&server, chatling_list()).await;
        call(&server, chatling_list()).await;
        let (status, body) = call_json(&server, Call::raw("GET", "/_emulator/requests")).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["counts"],
            json!({"chatbase": 1, "chatzuri": 0, "chatling": 2, "chatbase_v2": 0})
        );
        let mut first = body["requests"][0].clone();
        let received = first.as_object_mut().and_then(|o| o.remove("received_ms"));
        assert!(
            received.is_some_and(|ms| ms.is_u64()),
            "{}",
            body["requests"][0]
        );
        assert_eq!(
            first,
            json!({
                "vendor": "chatbase",
                "method": "GET",
                "path": "/chatbase/api/v1/get-conversations",
                "query": "chatbotId=cb-support",
                "body": null,
                "auth_ok": true,
                "request_id": "abc",
            })
        );
        assert_eq!(body["requests"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            call(&server, Call::raw("DELETE", "/_emulator/requests"))
                .await
                .status,
            204
        );
        let (_, body) = call_json(&server, Call::raw("GET", "/_emulator/requests")).await;
        assert_eq!(
            body,
            json!({"requests": [], "counts": {"chatbase": 0, "chatzuri": 0, "chatling": 0, "chatbase_v2": 0}})
        );
        assert_eq!(server.state.request_count(Vendor::Chatling), 0);
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatling_settings_change_over_http() {
        let server = spawn().await;
        let put = |body: &str| Call::raw("PUT", "/_emulator/chatling").body(body);
        assert_eq!(call(&server, put(r#"{"per_page": 10}"#)).await.status, 204);
        let (_, body) = call_json(&server, chatling_list()).await;
        assert_eq!(
            body["data"]["pages"],
            json!({"current_page": 1, "last_page": 9, "per_page": 10})
        );

        assert_eq!(
            call(&server, put(r#"{"rate_limit_per_minute": 0}"#))
                .await
                .status,
            204
        );
        assert_eq!(call(&server, chatling_list()).await.status, 429);
        assert_eq!(
            call(&server, put(r#"{"messages_per_page": 3}"#))
                .await
                .status,
            204
        );
        assert_eq!(server.state.chatling_messages_per_page(), 3);
        assert_eq!(
            call(&server, chatling_list()).await.status,
            429,
            "absent keeps the limit"
        );
        assert_eq!(
            call(&server, put(r#"{"rate_limit_per_minute": null}"#))
                .await
                .status,
            204
        );
        assert_eq!(call(&server, chatling_list()).await.status, 200);

        let (_, body) = call_json(&server, chatling_list()).await;
        assert_eq!(body["data"]["pages"]["per_page"], 10, "per_page kept");

        for bad in [
            r#"{"per_page": 0}"#,
            r#"{"per_page": "5"}"#,
            r#"{"perpage": 5}"#,
            "nope",
        ] {
            assert_eq!(call(&server, put(bad)).await.status, 400, "{bad}");
        }
        assert_eq!(
            call(&server, Call::raw("GET", "/_emulator/chatling"))
                .await
                .status,
            405
        );
        server.stop().await;
    }

    #[actix_web::test]
    async fn chatbase_v2_rate_limit_changes_over_http() {
        let server = spawn().await;
        let put = |body: &str| Call::raw("PUT", "/_emulator/chatbase_v2").body(body);
        let export = || {
            Call::get(
                Vendor::ChatbaseV2,
                &format!("/agents/{CHATBASE_V2_BOT}/conversations/export?limit=1"),
            )
            .key(CHATBASE_V2_KEY)
        };
        assert_eq!(
            call(&server, put(r#"{"rate_limit_per_10s": 1}"#))
                .await
                .status,
            204
        );
        assert_eq!(call(&server, export()).await.status, 200);
        assert_eq!(call(&server, export()).await.status, 429);
        assert_eq!(call(&server, put("{}")).await.status, 204);
        assert_eq!(call(&server, export()).await.status, 429, "absent keeps it");
        assert_eq!(
            call(&server, put(r#"{"rate_limit_per_10s": null}"#))
                .await
                .status,
            204
        );
        assert_eq!(call(&server, export()).await.status, 200);
        for bad in [
            r#"{"rate_limit_per_10s": -1}"#,
            r#"{"per_page": 5}"#,
            "nope",
        ] {
            assert_eq!(call(&server, put(bad)).await.status, 400, "{bad}");
        }
        server.stop().await;
    }
}
