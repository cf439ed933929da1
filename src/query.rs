//! Parses list and detail parameters — from a query string or the older
//! Chatzuri-style JSON body — into typed values (SPEC §2.2). Both inputs are first
//! reduced to the same named fields, then validated by one function, so the two
//! dialects cannot drift apart.

use std::borrow::Cow;
use std::collections::BTreeSet;

use chatgate_providers::{DateRange, ListQuery, PageNumber, PageSize, Source};
use chrono::NaiveDate;
use serde_json::Value;
use url::form_urlencoded;

/// A request parameter that does not parse: what the API answers 400 with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A missing, unknown or ill-typed parameter, a bad JSON body.
    #[error("{0}")]
    Invalid(String),
    /// A date that is not strict `YYYY-MM-DD`, not a real date, or start > end.
    #[error("{0}")]
    Date(String),
}

/// The parameters the list endpoint reads; anything else is ignored.
const FIELDS: [&str; 8] = [
    "chatbotId",
    "agentId",
    "filteredSources",
    "startDate",
    "endDate",
    "page",
    "size",
    "include",
];

/// A list request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    /// The bot name the caller asked for.
    pub bot: String,
    /// The typed query.
    pub query: ListQuery,
}

/// A detail request's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailParams {
    /// The bot name.
    pub bot: String,
    /// Whether to add the vendor's original object.
    pub include_raw: bool,
}

/// Known fields with their raw text values: borrowed from the query string
/// when they hold no escapes (so a plain query is read without allocating),
/// owned when decoded or taken from a JSON body.
#[derive(Default)]
struct Fields<'a> {
    values: [Option<Cow<'a, str>>; FIELDS.len()],
}

impl<'a> Fields<'a> {
    fn set(&mut self, name: &str, value: Cow<'a, str>) -> Result<(), QueryError> {
        let Some(i) = FIELDS.iter().position(|f| *f == name) else {
            return Ok(());
        };
        if self.values[i].replace(value).is_some() {
            return Err(QueryError::Invalid(format!(
                "`{name}` is given more than once"
            )));
        }
        Ok(())
    }

    fn take(&mut self, name: &str) -> Option<Cow<'a, str>> {
        let i = FIELDS.iter().position(|f| *f == name)?;
        self.values[i].take()
    }

    /// Every decoding is accepted: a malformed escape stays as written and
    /// bytes that are not UTF-8 become U+FFFD, then the values are validated.
    fn from_query(query: &'a str) -> Result<Self, QueryError> {
        let mut fields = Self::default();
        if query.contains(['%', '+']) {
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                fields.set_from_query(&k, v)?;
            }
        } else {
            for (k, v) in plain_pairs(query) {
                fields.set_from_query(k, Cow::Borrowed(v))?;
            }
        }
        Ok(fields)
    }

    /// A query parameter: like [`Fields::set`], except that the list
    /// `filteredSources` may also be repeated, one item or more each time,
    /// which is how OpenAPI's default (`style: form, explode: true`) and so
    /// most generated clients send a list.
    fn set_from_query(&mut self, name: &str, value: Cow<'a, str>) -> Result<(), QueryError> {
        if name == "filteredSources" {
            if let Some(i) = FIELDS.iter().position(|f| *f == name) {
                if let Some(before) = &mut self.values[i] {
                    let before = before.to_mut();
                    before.push(',');
                    before.push_str(&value);
                    return Ok(());
                }
            }
        }
        self.set(name, value)
    }

    fn from_json(body: &[u8]) -> Result<Self, QueryError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| QueryError::Invalid(format!("the request body is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(QueryError::Invalid(
                "the request body must be a JSON object".to_owned(),
            ));
        };
        let mut fields = Self::default();
        for (k, v) in map {
            if !FIELDS.contains(&k.as_str()) {
                continue;
            }
            let text = match v {
                Value::String(s) => s,
                // The vendors type page and size as strings; callers send numbers
                // too, in any JSON spelling of an integer (`2`, `2.0`, `2e0`).
                Value::Number(n) if matches!(k.as_str(), "page" | "size") => integral(&n),
                Value::Array(items) if k == "filteredSources" => items
                    .into_iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s),
                        _ => Err(QueryError::Invalid(
                            "`filteredSources` must be a string or a list of strings".to_owned(),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                _ => {
                    return Err(QueryError::Invalid(format!(
                        "`{k}` has the wrong type: {}",
                        match k.as_str() {
                            "page" | "size" => "expected a number or a numeric string",
                            "filteredSources" => "expected a string or a list of strings",
                            _ => "expected a string",
                        }
                    )))
                }
            };
            fields.set(&k, Cow::Owned(text))?;
        }
        Ok(fields)
    }
}

/// The pairs of a query with nothing to decode (no `%`, no `+`), as
/// `form_urlencoded::parse` splits them: at `&`, skipping empty pairs, then at
/// the first `=`. The usual query is read this way, without the decoder's
/// passes over every byte.
fn plain_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Parses a GET query string.
pub fn list_from_query(query: &str) -> Result<ListParams, QueryError> {
    build_list(Fields::from_query(query)?)
}

/// Parses a POST JSON body; `include` may also come from the query string.
pub fn list_from_json(body: &[u8], query: &str) -> Result<ListParams, QueryError> {
    let mut fields = Fields::from_json(body)?;
    let mut from_query = Fields::from_query(query)?;
    if let Some(include) = from_query.take("include") {
        fields.set("include", include)?;
    }
    build_list(fields)
}

/// Parses the detail endpoint's query string.
pub fn detail_from_query(query: &str) -> Result<DetailParams, QueryError> {
    let mut fields = Fields::from_query(query)?;
    Ok(DetailParams {
        bot: bot(&mut fields)?,
        include_raw: include_raw(fields.take("include"))?,
    })
}

fn build_list(mut f: Fields<'_>) -> Result<ListParams, QueryError> {
    let bot = bot(&mut f)?;
    let sources = f
        .take("filteredSources")
        .map(|s| sources(&s))
        .transpose()?
        .flatten();
    let start = f
        .take("startDate")
        .map(|d| date("startDate", &d))
        .transpose()?;
    let end = f.take("endDate").map(|d| date("endDate", &d)).transpose()?;
    let dates = DateRange::new(start, end)
        .ok_or_else(|| QueryError::Date("`startDate` is after `endDate`".to_owned()))?;
    let page = match f.take("page") {
        None => PageNumber::default(),
        Some(p) => integer(&p).and_then(PageNumber::new).ok_or_else(|| {
            QueryError::Invalid(format!(
                "`page` must be an integer from 1 to {}, got {:?}",
                PageNumber::MAX,
                shorten(&p)
            ))
        })?,
    };
    let size = match f.take("size") {
        None => PageSize::default(),
        Some(s) => integer(&s).and_then(PageSize::new).ok_or_else(|| {
            QueryError::Invalid(format!(
                "`size` must be an integer from 1 to {}, got {:?}",
                PageSize::MAX,
                shorten(&s)
            ))
        })?,
    };
    Ok(ListParams {
        bot,
        query: ListQuery {
            sources,
            dates,
            page,
            size,
            include_raw: include_raw(f.take("include"))?,
        },
    })
}

/// `chatbotId`, or its alias `agentId` (Chatzuri's current name).
fn bot(f: &mut Fields<'_>) -> Result<String, QueryError> {
    match (f.take("chatbotId"), f.take("agentId")) {
        (Some(a), Some(b)) if a != b => Err(QueryError::Invalid(
            "`chatbotId` and `agentId` name different bots; send one".to_owned(),
        )),
        (Some(id), _) | (None, Some(id)) if !id.trim().is_empty() => Ok(id.into_owned()),
        _ => Err(QueryError::Invalid(
            "`chatbotId` (or `agentId`) is required: the name of a configured bot".to_owned(),
        )),
    }
}

/// Comma-separated canonical ids or vendor labels. Empty means no filter.
fn sources(value: &str) -> Result<Option<BTreeSet<Source>>, QueryError> {
    let mut set = BTreeSet::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let source = Source::parse_filter(item).ok_or_else(|| {
            let valid: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
            QueryError::Invalid(format!(
                "unknown source {:?} in `filteredSources`; valid values: {} (or a vendor label such as \"Widget or Iframe\")",
                shorten(item),
                valid.join(", ")
            ))
        })?;
        set.insert(source);
    }
    Ok((!set.is_empty()).then_some(set))
}

/// Strict `YYYY-MM-DD`: zero-padded, a real calendar date, nothing more.
fn date(name: &str, value: &str) -> Result<NaiveDate, QueryError> {
    let b = value.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shape_ok
        .then(|| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            QueryError::Date(format!(
                "`{name}` must be a real date written YYYY-MM-DD (e.g. 2023-07-10), got {:?}",
                shorten(value)
            ))
        })
}

/// A decimal integer of at most nine significant digits (leading zeros are
/// not significant), so no value can overflow `u32`.
fn integer(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = s.trim_start_matches('0');
    if significant.len() > 9 {
        return None;
    }
    Some(significant.parse().unwrap_or(0))
}

/// A JSON number as the digits of the integer it denotes, when it denotes one
/// (`76402.0`, `2e0`); any other number keeps its text and fails as a non-integer.
fn integral(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_u64() {
        return i.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            format!("{f:.0}")
        }
        _ => n.to_string(),
    }
}

fn include_raw(value: Option<Cow<'_, str>>) -> Result<bool, QueryError> {
    match value.as_deref().map(str::trim) {
        None => Ok(false),
        Some("raw") => Ok(true),
        Some(other) => Err(QueryError::Invalid(format!(
            "`include` accepts only \"raw\", got {:?}",
            shorten(other)
        ))),
    }
}

/// Echoing a caller's value is useful; echoing a megabyte of it is not.
fn shorten(s: &str) -> String {
    chatgate_providers::wire::shorten(s, 64)
}

/// The names config accepts for bots (`config::validate`): a `chatbotId`
/// outside them names no bot.
pub const BOT_NAME_PATTERN: &str = "^[A-Za-z0-9_.-]{1,128}$";

/// The shape `date` checks before the calendar.
pub const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// The OpenAPI description of the parameters, built beside their parser from
/// the same bounds ([`PageNumber::MAX`], [`PageSize::MAX`], [`Source`]), so the
/// document says what the parser accepts (`tests/api_contract.rs` checks the
/// patterns against it).
pub mod doc {
    use std::borrow::Cow;

    use chatgate_providers::{PageNumber, PageSize};
    use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
    use utoipa::openapi::schema::{
        AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
    };
    use utoipa::openapi::{Ref, RefOr, Required, Schema};
    use utoipa::{IntoParams, PartialSchema, ToSchema};

    use super::{DetailParams, ListParams, BOT_NAME_PATTERN, DATE_PATTERN};

    /// A decimal integer from 1 to [`PageNumber::MAX`] (100000), leading
    /// zeros allowed, as the body's numeric-string `page`.
    pub const PAGE_STRING_PATTERN: &str = "^0*([1-9][0-9]{0,4}|100000)$";

    /// A decimal integer from 1 to [`PageSize::MAX`] (100), leading zeros
    /// allowed, as the body's numeric-string `size`.
    pub const SIZE_STRING_PATTERN: &str = "^0*([1-9][0-9]?|100)$";

    /// A comma-separated list of canonical sources, as the body's string
    /// `filteredSources` (the query's is described as a list).
    pub fn sources_string_pattern() -> String {
        let one = chatgate_providers::Source::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("|");
        format!("^(({one})(,({one}))*)?$")
    }

    fn text(pattern: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
    }

    fn integer(max: u32, default: u32) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(max))
            .default(Some(default.into()))
    }

    fn date() -> ObjectBuilder {
        text(DATE_PATTERN).format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
    }

    fn source_list() -> ArrayBuilder {
        ArrayBuilder::new().items(Ref::from_schema_name("Source"))
    }

    fn include() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["raw"]))
    }

    fn query(
        name: &str,
        required: bool,
        schema: impl Into<RefOr<Schema>>,
        description: &str,
    ) -> ParameterBuilder {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(if required {
                Required::True
            } else {
                Required::False
            })
            .schema(Some(schema))
            .description(Some(description))
    }

    fn bot(example: &str) -> Parameter {
        query(
            "chatbotId",
            true,
            text(BOT_NAME_PATTERN),
            "The bot's name in the gateway's config (`[bots.<name>]`), never a vendor's id. \
             A name no bot has is 404 `bot_not_found`; a bot outside the key's `bots` is 403 `forbidden`.",
        )
        .example(Some(example.into()))
        .build()
    }

    fn agent() -> Parameter {
        query(
            "agentId",
            false,
            text(BOT_NAME_PATTERN),
            "Chatzuri's name for `chatbotId`, accepted instead of it; when both are given \
             they must be equal (else 400 `invalid_request`).",
        )
        .build()
    }

    fn include_raw() -> Parameter {
        query(
            "include",
            false,
            include(),
            "`raw` adds each conversation's original vendor object as `raw`.",
        )
        .build()
    }

    impl IntoParams for ListParams {
        fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
            vec![
                bot("support"),
                agent(),
                query(
                    "filteredSources",
                    false,
                    source_list(),
                    "Only conversations from these sources: the parameter repeated \
                     (`filteredSources=api&filteredSources=widget`), or comma-separated \
                     (`filteredSources=api,widget`), or both. Canonical ids (listed here) or \
                     any vendor label of one (`Widget or Iframe`, `WhatsApp`), any case, spaces \
                     trimmed; an unknown one is 400 `invalid_request`. Empty: no filter.",
                )
                .style(Some(ParameterStyle::Form))
                .explode(Some(true))
                .build(),
                query(
                    "startDate",
                    false,
                    date(),
                    "First day included (UTC, on `created_at`), strictly `YYYY-MM-DD`: zero-padded, \
                     a real date, else 400 `invalid_date`; after `endDate` is 400 `invalid_date`.",
                )
                .build(),
                query(
                    "endDate",
                    false,
                    date(),
                    "Last day included (UTC, on `created_at`), strictly `YYYY-MM-DD`.",
                )
                .build(),
                query(
                    "page",
                    false,
                    integer(PageNumber::MAX, PageNumber::FIRST.get()),
                    "Which page, from 1.",
                )
                .build(),
                query(
                    "size",
                    false,
                    integer(u32::from(PageSize::MAX), PageSize::DEFAULT.get()),
                    "Conversations per page.",
                )
                .build(),
                include_raw(),
            ]
        }
    }

    impl IntoParams for DetailParams {
        fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
            vec![bot("helpdesk"), agent(), include_raw()]
        }
    }

    /// The query string of `POST /api/v1/get-conversations`, whose other
    /// parameters are in the body.
    pub struct BodyQuery;

    impl IntoParams for BodyQuery {
        fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
            vec![include_raw()]
        }
    }

    /// `ListParams` as the JSON body of `POST /api/v1/get-conversations`.
    impl PartialSchema for ListParams {
        fn schema() -> RefOr<Schema> {
            let number_or_string = |max: u32, default: u32, pattern: &str| {
                AnyOfBuilder::new()
                    .item(integer(max, default))
                    .item(text(pattern))
            };
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "The list parameters as a JSON object (the older Chatzuri dialect): the \
                     query parameters' names and rules, `page` and `size` as numbers or \
                     numeric strings, `filteredSources` as a string or a list. Other fields \
                     are ignored; `null` is a wrong type.",
                ))
                .property("chatbotId", text(BOT_NAME_PATTERN))
                .required("chatbotId")
                .property("agentId", text(BOT_NAME_PATTERN))
                .property(
                    "filteredSources",
                    AnyOfBuilder::new()
                        .item(text(&sources_string_pattern()))
                        .item(source_list()),
                )
                .property("startDate", date())
                .property("endDate", date())
                .property(
                    "page",
                    number_or_string(PageNumber::MAX, 1, PAGE_STRING_PATTERN),
                )
                .property(
                    "size",
                    number_or_string(
                        u32::from(PageSize::MAX),
                        PageSize::DEFAULT.get(),
                        SIZE_STRING_PATTERN,
                    ),
                )
                .property("include", include())
                .examples([serde_json::json!({"chatbotId": "sales", "page": "1", "size": 2})])
                .into()
        }
    }

    impl ToSchema for ListParams {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("ListRequest")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's code for a parameter error (what `server/error.rs` maps to).
    fn code(e: &QueryError) -> &'static str {
        match e {
            QueryError::Invalid(_) => "invalid_request",
            QueryError::Date(_) => "invalid_date",
        }
    }

    fn err(q: &str) -> (String, &'static str) {
        let e = list_from_query(q).unwrap_err();
        (e.to_string(), code(&e))
    }

    #[test]
    fn defaults_apply_when_only_the_bot_is_given() {
        let p = list_from_query("chatbotId=support").unwrap();
        assert_eq!(p.bot, "support");
        assert_eq!(p.query, ListQuery::default());
    }

    #[test]
    fn query_values_are_decoded_leniently_then_validated() {
        let bot = |q| list_from_query(q).map(|p| p.bot);
        assert_eq!(bot("chatbotId=a%2Bb+c").unwrap(), "a+b c");
        assert_eq!(bot("chatbotId=a%zz%").unwrap(), "a%zz%");
        assert_eq!(bot("chatbotId=a%FF").unwrap(), "a\u{FFFD}");
        assert_eq!(bot("chat%62otId=x&size=%31%30").unwrap(), "x");
        assert_eq!(
            list_from_query("chatbotId=x&size=%31%30")
                .unwrap()
                .query
                .size
                .get(),
            10
        );
        assert_eq!(err("chatbotId=a&chatbotId=a").1, "invalid_request");
    }

    #[test]
    fn a_query_without_escapes_splits_as_the_decoder_splits_it() {
        for query in [
            "",
            "&",
            "&&a=1&&",
            "a",
            "a=",
            "=b",
            "=",
            "a==b=c",
            "chatbotId=support&size=10",
            "a=1&a=2&b&c=é",
        ] {
            let decoded: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
            let plain: Vec<_> = plain_pairs(query)
                .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
                .collect();
            assert_eq!(plain, decoded, "{query:?}");
        }
    }

    #[test]
    fn agent_id_is_an_alias_and_conflicts_are_rejected() {
        assert_eq!(list_from_query("agentId=sales").unwrap().bot, "sales");
        assert_eq!(err("chatbotId=a&agentId=b").1, "invalid_request");
        assert_eq!(list_from_query("chatbotId=a&agentId=a").unwrap().bot, "a");
    }

    #[test]
    fn dates_must_be_strict_real_and_ordered() {
        for bad in [
            "2023-7-10",
            "2023-02-30",
            "2023-07-10T00:00",
            "+2023-07-1",
            "２０２３-07-10",
            "",
        ] {
            let q = format!("chatbotId=a&startDate={}", urlencode(bad));
            assert_eq!(err(&q).1, "invalid_date", "{bad}");
        }
        assert_eq!(
            err("chatbotId=a&startDate=2024-02-02&endDate=2024-02-01").1,
            "invalid_date"
        );
        let p = list_from_query("chatbotId=a&startDate=2024-02-29&endDate=2024-02-29").unwrap();
        assert_eq!(p.query.dates.start(), NaiveDate::from_ymd_opt(2024, 2, 29));
    }

    #[test]
    fn page_and_size_are_bounded_integers() {
        for bad in [
            "page=0",
            "page=-1",
            "page=1.5",
            "page=100001",
            "page=",
            "page=%2B1",
            "size=0",
            "size=101",
            "size=abc",
        ] {
            assert_eq!(
                err(&format!("chatbotId=a&{bad}")).1,
                "invalid_request",
                "{bad}"
            );
        }
        let p = list_from_query("chatbotId=a&page=100000&size=100").unwrap();
        assert_eq!((p.query.page.get(), p.query.size.get()), (100_000, 100));
    }

    #[test]
    fn sources_accept_canonical_ids_and_vendor_labels_in_any_case() {
        let p = list_from_query(
            "chatbotId=a&filteredSources=API,%20Chatbase%20site%20,widget%20or%20iframe,WhatsApp",
        )
        .unwrap();
        let expected: BTreeSet<Source> = [
            Source::Api,
            Source::Website,
            Source::Widget,
            Source::Whatsapp,
        ]
        .into();
        assert_eq!(p.query.sources, Some(expected));
        let (msg, code) = err("chatbotId=a&filteredSources=api,fax");
        assert_eq!(code, "invalid_request");
        assert!(
            msg.contains("\"fax\"") && msg.contains("action_preview"),
            "{msg}"
        );
        assert_eq!(
            list_from_query("chatbotId=a&filteredSources=")
                .unwrap()
                .query
                .sources,
            None
        );
    }

    #[test]
    fn a_repeated_source_filter_is_one_list_as_generated_clients_send_it() {
        let repeated =
            list_from_query("chatbotId=a&filteredSources=whatsapp&filteredSources=API,slack")
                .unwrap();
        let commas = list_from_query("chatbotId=a&filteredSources=whatsapp,API,slack").unwrap();
        assert_eq!(repeated, commas);
        assert_eq!(
            err("chatbotId=a&filteredSources=api&filteredSources=fax").1,
            "invalid_request"
        );
        assert!(
            list_from_json(
                br#"{"chatbotId":"a"}"#,
                "filteredSources=api&filteredSources=x"
            )
            .is_ok(),
            "a POST reads only `include` from its query"
        );
    }

    #[test]
    fn repeated_parameters_are_rejected_and_unknown_ones_ignored() {
        assert_eq!(err("chatbotId=a&page=1&page=2").1, "invalid_request");
        assert!(list_from_query("chatbotId=a&utm_source=x&utm_source=y").is_ok());
    }

    #[test]
    fn json_bodies_take_numbers_or_numeric_strings() {
        let p = list_from_json(
            br#"{"chatbotId":"a","page":"2","size":20,"filteredSources":["API","slack"]}"#,
            "include=raw",
        )
        .unwrap();
        assert_eq!(
            (p.query.page.get(), p.query.size.get(), p.query.include_raw),
            (2, 20, true)
        );
        assert_eq!(p.query.sources.unwrap().len(), 2);
        for bad in [
            &br#"{"chatbotId":"a","page":1.5}"#[..],
            br#"{"chatbotId":"a","size":true}"#,
            br#"[1]"#,
            b"{",
            br#"{"chatbotId":7}"#,
        ] {
            assert_eq!(
                code(&list_from_json(bad, "").unwrap_err()),
                "invalid_request"
            );
        }
    }

    #[test]
    fn include_accepts_only_raw() {
        assert!(
            list_from_query("chatbotId=a&include=raw")
                .unwrap()
                .query
                .include_raw
        );
        assert_eq!(err("chatbotId=a&include=everything").1, "invalid_request");
    }

    fn urlencode(s: &str) -> String {
        serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
    }

    #[test]
    fn integral_json_numbers_are_pages_and_sizes() {
        for body in [
            r#"{"chatbotId":"b","page":2.0,"size":10}"#,
            r#"{"chatbotId":"b","page":2e0,"size":"10"}"#,
            r#"{"chatbotId":"b","page":"2","size":1.0e1}"#,
        ] {
            let p = list_from_json(body.as_bytes(), "").unwrap();
            assert_eq!((p.query.page.get(), p.query.size.get()), (2, 10), "{body}");
        }
        let p = list_from_json(br#"{"chatbotId":"b","page":76402.0}"#, "").unwrap();
        assert_eq!(p.query.page.get(), 76402);
        for bad in [
            r#"{"chatbotId":"b","page":2.5}"#,
            r#"{"chatbotId":"b","page":-1}"#,
            r#"{"chatbotId":"b","page":1e300}"#,
        ] {
            let e = list_from_json(bad.as_bytes(), "").unwrap_err();
            assert_eq!(code(&e), "invalid_request", "{bad}");
        }
    }

    #[test]
    fn null_body_fields_are_a_wrong_type() {
        for body in [
            r#"{"chatbotId":"b","page":null}"#,
            r#"{"chatbotId":null}"#,
            r#"{"chatbotId":"b","startDate":null}"#,
        ] {
            let e = list_from_json(body.as_bytes(), "").unwrap_err();
            assert!(e.to_string().contains("wrong type"), "{body}: {e}");
        }
    }

    #[test]
    fn an_empty_include_is_refused_like_every_other_empty_parameter() {
        let (msg, code) = err("chatbotId=b&include=");
        assert_eq!(code, "invalid_request");
        assert!(msg.contains("include"), "{msg}");
        assert!(detail_from_query("chatbotId=b&include=").is_err());
    }

    /// Numbers as text, with leading zeros and signs, around every bound.
    fn number_spellings() -> Vec<String> {
        let mut all = Vec::new();
        for n in (0..=1_000u32)
            .chain(99_990..=100_010)
            .chain([999_999_999, u32::MAX])
        {
            all.push(n.to_string());
            all.push(format!("00{n}"));
            all.push(format!("+{n}"));
            all.push(format!("-{n}"));
            all.push(format!("{n}.0"));
        }
        all.extend(["", " 1", "1 ", "0x10", "1e2", "01234567890"].map(String::from));
        all
    }

    #[test]
    fn the_documents_numeric_string_patterns_accept_exactly_what_the_parser_does() {
        let page = regex::Regex::new(doc::PAGE_STRING_PATTERN).unwrap();
        let size = regex::Regex::new(doc::SIZE_STRING_PATTERN).unwrap();
        for s in number_spellings() {
            let parsed = integer(&s);
            assert_eq!(
                page.is_match(&s),
                parsed.and_then(PageNumber::new).is_some(),
                "page {s:?}"
            );
            assert_eq!(
                size.is_match(&s),
                parsed.and_then(PageSize::new).is_some(),
                "size {s:?}"
            );
        }
    }

    #[test]
    fn what_the_documents_source_and_date_patterns_allow_the_parser_accepts() {
        let sources = regex::Regex::new(&doc::sources_string_pattern()).unwrap();
        let all: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
        for value in [String::new(), all.join(","), "api,api".to_owned()]
            .into_iter()
            .chain(all.iter().map(|s| (*s).to_owned()))
        {
            assert!(sources.is_match(&value), "{value:?}");
            assert!(super::sources(&value).is_ok(), "{value:?}");
        }
        for value in ["fax", "api,fax", ",api", "api,"] {
            assert!(!sources.is_match(value), "{value:?}");
        }
        let dates = regex::Regex::new(DATE_PATTERN).unwrap();
        for value in ["2024-02-29", "0001-01-01", "9999-12-31"] {
            assert!(dates.is_match(value));
            assert!(date("startDate", value).is_ok(), "{value}");
        }
        for value in ["2023-7-10", "2023-07-10T00:00", "+2023-07-1", "20230710"] {
            assert!(!dates.is_match(value), "{value}");
            assert!(date("startDate", value).is_err(), "{value}");
        }
    }

    #[test]
    fn leading_zeros_do_not_count_towards_the_digit_limit() {
        for q in ["chatbotId=b&page=000000361", "chatbotId=b&page=0000000361"] {
            assert_eq!(list_from_query(q).unwrap().query.page.get(), 361, "{q}");
        }
        assert_eq!(err("chatbotId=b&page=1234567890").1, "invalid_request");
        assert_eq!(err("chatbotId=b&page=0").1, "invalid_request");
    }
}
