//! The API's OpenAPI 3.1 document (README "OpenAPI"), generated from the code
//! so it cannot drift from what the server does:
//! - each operation from its handler's `#[utoipa::path]` (`routes.rs`);
//! - the parameters from their parser's own bounds (`query::doc`);
//! - the schemas derived from the types that are serialized: the normalized
//!   model (`chatgate-providers`, feature `openapi`), the list and detail
//!   bodies (`gateway`), the error body (`error.rs`);
//! - every operation's error answers from `error.rs`'s [`ERRORS`] table, and
//!   the headers every answer carries, in `add_answers`.
//!
//! Served at `GET /openapi.json` and committed as `openapi.json` at the
//! repository's root; `chatgate openapi > openapi.json` regenerates the file,
//! and `tests/api_contract.rs` fails while the two differ.

use std::sync::LazyLock;

use bytes::Bytes;
use chatgate_providers::{KbSource, Message, ProviderKind, Role, Source};
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{Counted, ErrorDoc, Scope, ERRORS};
use super::request_log::REQUEST_ID_PATTERN;
use super::routes;

/// The name of the bearer-key security scheme.
const CLIENT_KEY: &str = "clientKey";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatgate",
        description = "One normalized get-conversations API in front of Chatbase, Chatzuri \
            and Chatling. Callers name bots, never vendors: the answer has one shape (roles, \
            sources, timestamps, ordering, paging, errors) whatever the bot's vendor.\n\n\
            Every answer carries `X-Request-Id`; every error is the flat `Error` object. \
            Every `GET` route also answers `HEAD` (the `GET` answer without its body); \
            another method is 405 with `Allow`. Every answer to a request with a valid \
            client key carries the client's rate-limit headers: `RateLimit-Policy` and \
            `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11) and the older draft's \
            `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`."
    ),
    paths(
        routes::list_get,
        routes::list_post,
        routes::get_conversation,
        routes::list_bots,
        routes::healthz,
        routes::readyz,
        routes::metrics,
        routes::openapi,
    ),
    components(schemas(Source, ProviderKind, Role, Message, KbSource)),
    modifiers(&ClientKey),
    tags(
        (name = "conversations", description = "A bot's conversation history, normalized."),
        (name = "bots", description = "What a client key may read."),
        (name = "operations", description = "Health, metrics and this document; no key."),
    )
)]
struct ApiDoc;

/// Adds the bearer client key as the security scheme the operations name.
struct ClientKey;

impl Modify for ClientKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "`Authorization: Bearer <client key>`: a key of a `[clients.<name>]` in config.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(CLIENT_KEY, SecurityScheme::Http(scheme));
    }
}

/// The whole document.
pub fn document() -> Value {
    // Serializing utoipa's document types (maps, strings, numbers) cannot fail.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    add_answers(&mut doc);
    doc
}

/// The document as committed in `openapi.json`: pretty-printed, keys in a
/// stable order, ending with a newline.
pub fn pretty() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// The bytes `GET /openapi.json` answers, built once.
pub fn served() -> Bytes {
    static SERVED: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(pretty()));
    SERVED.clone()
}

/// What an operation is, as far as its possible answers go.
struct Traits {
    /// It needs a client key.
    authenticated: bool,
    /// It reads a bot (`chatbotId`), so the vendors are involved.
    bot: bool,
    /// It reads a request body.
    body: bool,
}

impl Traits {
    fn of(op: &Value) -> Self {
        let named = |name: &str| {
            op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name))
        };
        let body = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        Self {
            authenticated: op["security"].as_array().is_some_and(|s| !s.is_empty()),
            // In the query, or in the body (`ListRequest` names the bot too).
            bot: named("chatbotId") || body == "#/components/schemas/ListRequest",
            body: !body.is_null(),
        }
    }

    fn has(&self, scope: Scope) -> bool {
        match scope {
            Scope::Any => true,
            Scope::Authenticated => self.authenticated,
            Scope::Bot => self.bot,
            Scope::Body => self.body,
        }
    }
}

/// Adds to every operation what every route shares: the `X-Request-Id`
/// request header, the error answers [`ERRORS`] says it can give, and the
/// headers of each answer.
fn add_answers(doc: &mut Value) {
    let shared: Map<String, Value> = rate_limit_headers()
        .into_iter()
        .chain([request_id_header()])
        .map(|(name, h)| (name.to_owned(), h))
        .collect();
    doc["components"]["headers"] = Value::Object(shared);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let traits = Traits::of(op);
            add_request_id_parameter(op);
            let responses = op["responses"].as_object_mut();
            let Some(responses) = responses else {
                continue;
            };
            let mut statuses: Vec<u16> = ERRORS
                .iter()
                .filter(|e| traits.has(e.scope))
                .map(|e| e.status)
                .collect();
            statuses.dedup();
            for status in statuses {
                let rows: Vec<&ErrorDoc> = ERRORS
                    .iter()
                    .filter(|e| e.status == status && traits.has(e.scope))
                    .collect();
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(&rows));
            }
            for (status, response) in responses.iter_mut() {
                let rows: Vec<&ErrorDoc> = ERRORS
                    .iter()
                    .filter(|e| e.status.to_string() == *status && traits.has(e.scope))
                    .collect();
                let success = status.starts_with('2');
                response["headers"] = Value::Object(headers(&traits, success, &rows));
            }
        }
    }
}

fn add_request_id_parameter(op: &mut Value) {
    let parameter = json!({
        "name": "X-Request-Id",
        "in": "header",
        "required": false,
        "description": "Your id for this request: echoed in `X-Request-Id` and the error \
            body's `request_id`, and sent on to the vendor, when it is at most 128 characters \
            of `[A-Za-z0-9._-]`; otherwise (or without it) the gateway makes a new UUID.",
        "schema": { "type": "string" },
    });
    match op["parameters"].as_array_mut() {
        Some(ps) => ps.push(parameter),
        None => op["parameters"] = json!([parameter]),
    }
}

/// An error answer: the `Error` body, this status's codes each explained.
/// (One `Error` schema for every status, rather than `code` narrowed per
/// status, so a generated client has one error type.)
fn error_response(rows: &[&ErrorDoc]) -> Value {
    let explained: Vec<String> = rows
        .iter()
        .map(|e| format!("- `{}`: {}", e.code, e.when))
        .collect();
    json!({
        "description": explained.join("\n"),
        "content": {
            "application/json": {
                "schema": { "$ref": "#/components/schemas/Error" }
            }
        }
    })
}

/// The headers of one answer of an operation: `rows` are the errors it may be
/// (none for a success).
fn headers(traits: &Traits, success: bool, rows: &[&ErrorDoc]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("X-Request-Id".into(), shared_header("X-Request-Id"));
    if success && traits.bot {
        out.insert(
            "X-Provider".into(),
            header(
                true,
                "The bot's vendor kind; for a dual-read bot its backends' kinds, \
                 comma-separated, in config order.",
                json!({
                    "type": "string",
                    "pattern": "^(chatbase|chatzuri|chatling)(,(chatbase|chatzuri|chatling))*$"
                }),
            ),
        );
        out.insert(
            "X-Cache".into(),
            header(
                true,
                "How the cache answered: `HIT` (fresh, no vendor call), `MISS` (the vendor \
                 was called), `STALE` (the vendor failed; an expired answer within \
                 `stale_if_error_secs`), `BYPASS` (`Cache-Control: no-cache`, or the cache off).",
                json!({ "type": "string", "enum": ["HIT", "MISS", "STALE", "BYPASS"] }),
            ),
        );
    }
    // A success, like an error only ever given after counting, always carries
    // them; an error sometimes given before counting may.
    let counted = if success || rows.iter().all(|e| e.counted == Counted::Always) {
        Some(true)
    } else if rows.iter().any(|e| e.counted != Counted::Never) {
        Some(false)
    } else {
        None
    };
    if let (true, Some(required)) = (traits.authenticated, counted) {
        for (name, h) in rate_limit_headers() {
            let h = if required {
                shared_header(name)
            } else {
                // The same header, present only when the request was counted.
                header(
                    false,
                    &format!(
                        "As on a success (`#/components/headers/{name}`), when this \
                              answer came after the client was counted."
                    ),
                    h["schema"].clone(),
                )
            };
            out.insert(name.into(), h);
        }
    }
    if !rows.is_empty() && rows.iter().all(|e| e.retry_after) {
        out.insert(
            "Retry-After".into(),
            header(
                true,
                "Whole seconds to wait before trying again, at least 1.",
                json!({ "type": "integer", "minimum": 1 }),
            ),
        );
    }
    if rows.iter().any(|e| e.code == "method_not_allowed") {
        out.insert(
            "Allow".into(),
            header(
                true,
                "The methods of this path (RFC 9110 §10.2.1).",
                json!({ "type": "string" }),
            ),
        );
    }
    out
}

/// A reference to a header of `components.headers`.
fn shared_header(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

fn request_id_header() -> (&'static str, Value) {
    (
        "X-Request-Id",
        header(
            true,
            "The request's id: the caller's when sane, else a new UUID.",
            json!({ "type": "string", "pattern": REQUEST_ID_PATTERN }),
        ),
    )
}

/// The client's rate-limit headers (README "Rate limits"): the numbers of the
/// GCRA limiter, in the current draft's Structured Fields and the older
/// draft's integers.
fn rate_limit_headers() -> [(&'static str, Value); 5] {
    let required = true;
    [
        (
            "RateLimit-Policy",
            header(
                required,
                "The client's quota policy (draft-ietf-httpapi-ratelimit-headers-11), a \
                 Structured Fields List: `\"client\";q=<burst>;w=<seconds>`. `q`: the \
                 requests the client may make at once (`burst`). `w`: the whole seconds \
                 (rounded up) an empty bucket takes to fill again, `burst × 60 / \
                 requests_per_minute`; a client making `q` requests every `w` seconds is \
                 never refused.",
                json!({ "type": "string", "pattern": "^\"client\";q=[0-9]+;w=[0-9]+$" }),
            ),
        ),
        (
            "RateLimit",
            header(
                required,
                "The client's quota now (draft-ietf-httpapi-ratelimit-headers-11), a \
                 Structured Fields List: `\"client\";r=<remaining>;t=<seconds>`. `r`: the \
                 requests it may make right now (`RateLimit-Remaining`). `t`: the whole \
                 seconds (rounded up) until its bucket is full again, `r` back to `q` \
                 (`RateLimit-Reset`).",
                json!({ "type": "string", "pattern": "^\"client\";r=[0-9]+;t=[0-9]+$" }),
            ),
        ),
        (
            "RateLimit-Limit",
            header(
                required,
                "The older draft's form of `q`: the client's burst.",
                json!({ "type": "integer", "minimum": 1 }),
            ),
        ),
        (
            "RateLimit-Remaining",
            header(
                required,
                "The older draft's form of `r`: requests the client may make right now.",
                json!({ "type": "integer", "minimum": 0 }),
            ),
        ),
        (
            "RateLimit-Reset",
            header(
                required,
                "The older draft's form of `t`: whole seconds (rounded up) until the \
                 client's bucket is full again.",
                json!({ "type": "integer", "minimum": 0 }),
            ),
        ),
    ]
}

fn header(required: bool, description: &str, schema: Value) -> Value {
    json!({ "description": description, "required": required, "schema": schema })
}
