//! Validation, exercised on TOML text: every problem class with its exact message,
//! several problems reported at once, origins (file, environment variable), and
//! `Debug` that never prints a secret. No binary is spawned (tests/cli.rs does
//! that for `check-config`).

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use chatgate_providers::{Dialect, ProviderKind};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};

use super::*;

/// The smallest config that serves someone: one provider, one bot, one client.
const VALID: &str = r#"
[providers.chatbase]
api_key = "sk-chatbase-secret"

[bots.support]
provider = "chatbase"
chatbot_id = "ckl123abc456"

[clients.analytics]
key = "analytics-key-0123456789"
bots = ["support"]
"#;

/// Every problem `toml` has, in the order validation reports them.
fn problems(toml: &str) -> Vec<String> {
    match from_toml_str(toml) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.problems,
    }
}

/// The problems of [`VALID`] with more tables appended.
fn problems_with(extra: &str) -> Vec<String> {
    problems(&format!("{VALID}\n{extra}"))
}

fn assert_reports(problems: &[String], expected: &str) {
    assert!(
        problems.iter().any(|p| p == expected),
        "missing {expected:?} in:\n{}",
        problems.join("\n")
    );
}

fn valid(toml: &str) -> Config {
    from_toml_str(toml).unwrap_or_else(|e| panic!("{e}"))
}

/// A provider table `name` (its kind, unless `extra` sets one) with a key and
/// `extra` lines, a bot on it and a client of every bot.
fn provider(name: &str, extra: &str) -> String {
    format!(
        r#"
[providers.{name}]
api_key = "sk-{name}-secret"
{extra}
[bots.bot-{name}]
provider = "{name}"
chatbot_id = "id-{name}"
[clients.client-{name}]
key = "client-{name}-key-0123456789"
bots = ["*"]
"#
    )
}

// --- the valid path and its defaults ---------------------------------------

#[test]
fn omitted_keys_take_their_documented_defaults() {
    let config = valid(VALID);
    assert_eq!(config.server.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.server.workers, 0);
    assert_eq!(config.server.request_timeout, Duration::from_secs(30));
    assert_eq!(config.server.request_body_timeout, Duration::from_secs(10));
    assert_eq!(config.server.auth_failures.count.get(), 60);
    assert_eq!(config.server.auth_failures.burst.get(), 20);
    assert_eq!(config.server.metrics_bind, None);
    assert_eq!(config.server.max_vendor_calls_per_request.get(), 100);
    assert_eq!(config.server.max_inflight_body_bytes, 64 * 1024 * 1024);
    assert_eq!(
        config.cache,
        CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(300),
            max_bytes: 64 * 1024 * 1024,
        }
    );

    let p = &config.providers["chatbase"];
    assert_eq!(p.kind, ProviderKind::Chatbase);
    assert_eq!(p.base_url, "https://www.chatbase.co/api/v1");
    assert_eq!(p.timeout, Duration::from_secs(10));
    assert_eq!(p.connect_timeout, Duration::from_secs(3));
    assert_eq!(p.max_body_bytes, 16 * 1024 * 1024);
    assert_eq!(p.adapter.dialect, Dialect::Current);
    assert_eq!(p.adapter.max_scan_pages.get(), 50);
    assert_eq!(p.max_requests_per_second.get(), 10);
    assert_eq!(p.max_retries, 2);
    assert_eq!(p.max_retry_wait, Duration::from_secs(5));
    assert_eq!(p.max_pause, Duration::from_secs(300));
    assert_eq!(p.circuit_failure_threshold.get(), 5);
    assert_eq!(p.circuit_cooldown, Duration::from_secs(30));

    assert_eq!(
        config.bots["support"].backends,
        vec![Backend {
            provider: "chatbase".into(),
            chatbot_id: "ckl123abc456".into(),
        }]
    );
    let client = &config.clients[0];
    assert_eq!(client.name, "analytics");
    assert!(client.bots.allows("support") && !client.bots.allows("sales"));
    assert_eq!(
        client.rate,
        Rate {
            count: NonZeroU32::new(600).unwrap(),
            period: Duration::from_secs(60),
            burst: NonZeroU32::new(20).unwrap(),
        }
    );
    assert_eq!(config.path, Path::new("<inline>"));
}

#[test]
fn each_vendor_gets_its_own_base_url_and_quota_by_default() {
    let config = valid(&format!(
        "{}{}",
        provider("chatzuri", ""),
        provider("chatling", "")
    ));
    let zuri = &config.providers["chatzuri"];
    assert_eq!(zuri.base_url, "https://www.chatzuri.com/api/v1");
    assert_eq!(zuri.max_requests_per_second.get(), 10);
    let ling = &config.providers["chatling"];
    assert_eq!(ling.base_url, "https://api.chatling.ai/v2");
    // Chatling documents 300 calls per minute per key.
    assert_eq!(ling.max_requests_per_second.get(), 5);
}

#[test]
fn every_vendor_default_comes_from_its_descriptor() {
    let toml: String = ProviderKind::ALL
        .iter()
        .map(|k| provider(&format!("p-{k}"), &format!("kind = \"{k}\"")))
        .collect();
    let config = valid(&toml);
    for kind in ProviderKind::ALL {
        let (p, info) = (&config.providers[&format!("p-{kind}")], kind.info());
        assert_eq!(p.kind, kind);
        assert_eq!(p.base_url, info.default_base_url);
        assert_eq!(p.max_requests_per_second, info.default_requests_per_second);
        assert_eq!(p.adapter.dialect, info.default_dialect());
    }
}

#[test]
fn explicit_kind_base_url_dialect_and_quota_are_kept() {
    let config = valid(&provider(
        "old-zuri",
        "kind = \"chatzuri\"\nbase_url = \"http://127.0.0.1:9100/chatzuri/api/v1/\"\n\
         dialect = \"legacy\"\nmax_requests_per_second = 3",
    ));
    let p = &config.providers["old-zuri"];
    assert_eq!(p.kind, ProviderKind::Chatzuri);
    assert_eq!(p.base_url, "http://127.0.0.1:9100/chatzuri/api/v1");
    assert_eq!(p.adapter.dialect, Dialect::Legacy);
    assert_eq!(p.max_requests_per_second.get(), 3);
}

#[test]
fn a_client_key_may_be_given_as_its_sha256() {
    let key = "analytics-key-0123456789";
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    let config = valid(&VALID.replace(
        &format!("key = \"{key}\""),
        &format!("key_sha256 = \"{}\"", hash.to_ascii_uppercase()),
    ));
    assert_eq!(hex::encode(config.clients[0].key_sha256), hash);
}

// --- one problem class at a time -------------------------------------------

#[test]
fn rejects_an_unknown_provider_kind() {
    let known = "(known: `chatbase`, `chatzuri`, `chatling`, `chatbase_v2`)";
    assert_reports(
        &problems_with("[providers.acme]\napi_key = \"k\""),
        &format!(
            "`providers.acme`: unknown provider kind `acme` {known}; \
             set `kind` when the table name is not a kind"
        ),
    );
    assert_reports(
        &problems_with("[providers.acme]\nkind = \"Chatbase\"\napi_key = \"k\""),
        &format!(
            "`providers.acme.kind`: unknown provider kind `Chatbase` {known}; \
             set `kind` when the table name is not a kind"
        ),
    );
}

#[test]
fn rejects_a_bot_naming_a_missing_provider() {
    assert_eq!(
        problems(&VALID.replace("provider = \"chatbase\"", "provider = \"chatbse\"")),
        [
            "`bots.support.provider`: names provider `chatbse`, which is not defined \
          (defined: `chatbase`)"
        ]
    );
}

#[test]
fn rejects_a_client_naming_a_missing_bot() {
    assert_eq!(
        problems(&VALID.replace("bots = [\"support\"]", "bots = [\"support\", \"ghost\"]")),
        [
            "`clients.analytics.bots`: names bot `ghost`, which is not defined \
          (defined: `support`)"
        ]
    );
}

#[test]
fn rejects_a_client_with_no_bots_or_star_among_others() {
    assert_eq!(
        problems(&VALID.replace("bots = [\"support\"]", "bots = []")),
        ["`clients.analytics.bots`: must list at least one bot, or `*`"]
    );
    assert_eq!(
        problems(&VALID.replace("bots = [\"support\"]", "bots = [\"*\", \"support\"]")),
        ["`clients.analytics.bots`: `*` already allows every bot; list nothing else"]
    );
}

#[test]
fn rejects_a_missing_or_blank_api_key_naming_its_environment_variable() {
    let expected = "`providers.chatbase.api_key`: is required \
                    (or set CHATGATE_PROVIDERS__CHATBASE__API_KEY)";
    assert_eq!(
        problems(&VALID.replace("api_key = \"sk-chatbase-secret\"", "")),
        [expected]
    );
    assert_eq!(
        problems(&VALID.replace("\"sk-chatbase-secret\"", "\"  \"")),
        [expected]
    );
}

#[test]
fn rejects_two_clients_with_one_key_however_written() {
    let twin = "[clients.twin]\nkey = \"analytics-key-0123456789\"\nbots = [\"*\"]";
    assert_eq!(
        problems_with(twin),
        ["`clients.twin`: has the same key as client `analytics`; each client needs its own"]
    );
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        b"analytics-key-0123456789",
    ));
    assert_eq!(
        problems_with(&format!(
            "[clients.twin]\nkey_sha256 = \"{hash}\"\nbots = [\"*\"]"
        )),
        ["`clients.twin`: has the same key as client `analytics`; each client needs its own"]
    );
}

#[test]
fn rejects_a_short_client_key() {
    assert_eq!(
        problems(&VALID.replace("analytics-key-0123456789", "0123456789abcde")),
        ["`clients.analytics.key`: must be at least 16 characters"]
    );
    valid(&VALID.replace("analytics-key-0123456789", "0123456789abcdef"));
}

#[test]
fn rejects_a_bad_key_sha256_or_both_or_neither_key_forms() {
    for bad in ["abc", &"g".repeat(64), &"a".repeat(62), &"a".repeat(66)] {
        assert_eq!(
            problems(&VALID.replace(
                "key = \"analytics-key-0123456789\"",
                &format!("key_sha256 = \"{bad}\"")
            )),
            ["`clients.analytics.key_sha256`: must be 64 hexadecimal characters"],
            "{bad}"
        );
    }
    assert_eq!(
        problems(&VALID.replace(
            "key = \"analytics-key-0123456789\"",
            &format!(
                "key = \"analytics-key-0123456789\"\nkey_sha256 = \"{}\"",
                "a".repeat(64)
            )
        )),
        ["`clients.analytics`: set either `key` or `key_sha256`, not both"]
    );
    assert_eq!(
        problems(&VALID.replace("key = \"analytics-key-0123456789\"", "")),
        ["`clients.analytics`: needs `key` or `key_sha256`"]
    );
}

#[test]
fn rejects_a_base_url_that_is_not_plain_http() {
    for (url, why) in [
        ("ftp://example.com", "must start with http:// or https://"),
        ("/api/v1", "must start with http:// or https://"),
        ("example.com/api", "is not a URL"),
        ("http://:8080/api", "has no host"),
        ("http://exa mple.com", "is not a URL"),
        (
            "https://example.com/api?key=1",
            "must not have a query or fragment",
        ),
        (
            "https://example.com/api#top",
            "must not have a query or fragment",
        ),
    ] {
        assert_eq!(
            problems(&VALID.replace(
                "api_key = \"sk-chatbase-secret\"",
                &format!("api_key = \"sk-chatbase-secret\"\nbase_url = \"{url}\"")
            )),
            [format!("`providers.chatbase.base_url`: {url:?} {why}")],
        );
    }
}

#[test]
fn rejects_listen_addresses_that_are_not_ip_and_port() {
    assert_eq!(
        problems(&format!(
            "[server]\nbind = \"localhost:8080\"\nmetrics_bind = \"9090\"\n{VALID}"
        )),
        [
            "`server.bind`: \"localhost:8080\" is not an IP:port address",
            "`server.metrics_bind`: \"9090\" is not an IP:port address",
        ]
    );
}

#[test]
fn rejects_zero_and_out_of_range_numbers() {
    let server = "[server]\nrequest_timeout_ms = 9223372036854775807\n\
                  request_body_timeout_ms = 0\nmax_vendor_calls_per_request = 0\n\
                  auth_failures_per_minute = 0\nauth_failure_burst = 0\n\
                  max_inflight_body_bytes = 1023\n";
    let cache = "[cache]\nttl_secs = 0\nmax_bytes = 0\nstale_if_error_secs = 31536001\n";
    let provider = "timeout_ms = 0\nconnect_timeout_ms = 3600001\nmax_body_bytes = 0\n\
                    max_retry_wait_ms = 3600001\nmax_pause_secs = 0\nmax_scan_pages = 0\n\
                    max_requests_per_second = 0\nmax_retries = 11\n\
                    circuit_failure_threshold = 0\ncircuit_cooldown_secs = 0\n";
    let toml = format!("{server}{cache}{VALID}")
        .replace(
            "api_key = \"sk-chatbase-secret\"",
            &format!("api_key = \"sk-chatbase-secret\"\n{provider}"),
        )
        .replace(
            "bots = [\"support\"]",
            "bots = [\"support\"]\nrequests_per_minute = 0\nburst = 0",
        );
    let got = problems(&toml);
    let expected = [
        "`server.request_timeout_ms`: must be from 1 to 3600000 (got 9223372036854775807)",
        "`server.max_inflight_body_bytes`: must be from 1024 to 17179869184 (got 1023)",
        "`server.max_vendor_calls_per_request`: must be from 1 to 10000 (got 0)",
        "`server.request_body_timeout_ms`: must be from 1 to 3600000 (got 0)",
        "`server.auth_failures_per_minute`: must be greater than 0",
        "`server.auth_failure_burst`: must be greater than 0",
        "`cache.ttl_secs`: must be greater than 0 (or set cache.enabled = false)",
        "`cache.max_bytes`: must be greater than 0 (or set cache.enabled = false)",
        "`cache.stale_if_error_secs`: must be from 0 to 31536000 (got 31536001)",
        "`providers.chatbase.timeout_ms`: must be from 1 to 3600000 (got 0)",
        "`providers.chatbase.connect_timeout_ms`: must be from 1 to 3600000 (got 3600001)",
        "`providers.chatbase.max_body_bytes`: must be from 1 to 1073741824 (got 0)",
        "`providers.chatbase.max_retry_wait_ms`: must be from 0 to 3600000 (got 3600001)",
        "`providers.chatbase.max_pause_secs`: must be from 1 to 86400 (got 0)",
        "`providers.chatbase.max_scan_pages`: must be from 1 to 10000 (got 0)",
        "`providers.chatbase.circuit_failure_threshold`: must be greater than 0",
        "`providers.chatbase.circuit_cooldown_secs`: must be from 1 to 86400",
        "`providers.chatbase.max_retries`: must be at most 10",
        "`providers.chatbase.max_requests_per_second`: must be greater than 0",
        "`clients.analytics.requests_per_minute`: must be greater than 0",
        "`clients.analytics.burst`: must be greater than 0",
    ];
    assert_eq!(got, expected);
}

#[test]
fn a_disabled_cache_may_have_zero_lifetimes() {
    valid(&format!(
        "[cache]\nenabled = false\nttl_secs = 0\nmax_bytes = 0\n{VALID}"
    ));
}

#[test]
fn negative_or_mistyped_numbers_fail_in_the_parse_naming_their_key() {
    let got = problems(&VALID.replace(
        "api_key = \"sk-chatbase-secret\"",
        "api_key = \"sk-chatbase-secret\"\ntimeout_ms = -1",
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("providers.chatbase.timeout_ms") && !got[0].contains("default."),
        "{got:?}"
    );
}

#[test]
fn rejects_unknown_keys_without_the_profile_prefix() {
    let got = problems(&format!("[server]\nbnid = \"127.0.0.1:1\"\n{VALID}"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("unknown field: found `bnid`"), "{got:?}");
    assert!(!got[0].contains("default."), "{got:?}");
}

#[test]
fn rejects_a_dialect_the_vendor_does_not_have() {
    assert_eq!(
        problems(&VALID.replace(
            "api_key = \"sk-chatbase-secret\"",
            "api_key = \"sk-chatbase-secret\"\ndialect = \"legacy\""
        )),
        ["`providers.chatbase.dialect`: only Chatzuri providers have dialects"]
    );
    assert_eq!(
        problems(&provider("chatling", "dialect = \"current\"")),
        ["`providers.chatling.dialect`: only Chatzuri providers have dialects"]
    );
    assert_eq!(
        problems(&provider("chatzuri", "dialect = \"Legacy\"")),
        ["`providers.chatzuri.dialect`: must be `current` or `legacy`"]
    );
    let config = valid(&provider("chatzuri", "dialect = \"current\""));
    assert_eq!(
        config.providers["chatzuri"].adapter.dialect,
        Dialect::Current
    );
}

#[test]
fn rejects_a_provider_body_larger_than_the_process_body_budget() {
    assert_eq!(
        problems(&format!(
            "[server]\nmax_inflight_body_bytes = 1048576\n{}",
            VALID.replace(
                "api_key = \"sk-chatbase-secret\"",
                "api_key = \"sk-chatbase-secret\"\nmax_body_bytes = 1048577"
            )
        )),
        [
            "`providers.chatbase.max_body_bytes`: is larger than server.max_inflight_body_bytes \
          (1048576): such a body could never be read"
        ]
    );
}

#[test]
fn rejects_an_empty_config_as_serving_no_one() {
    assert_eq!(
        problems(""),
        [
            "`bots`: at least one bot is required ([bots.<name>] with a provider and chatbot_id)",
            "`clients`: at least one client is required ([clients.<name>] with a key and bots)",
        ]
    );
}

#[test]
fn rejects_a_config_without_clients() {
    let without_clients = &VALID[..VALID.find("[clients.").unwrap()];
    assert_eq!(
        problems(without_clients),
        ["`clients`: at least one client is required ([clients.<name>] with a key and bots)"]
    );
}

#[test]
fn rejects_bots_with_no_backend_both_forms_or_a_backend_twice() {
    let bot = |body: &str| {
        problems(&format!(
            "{}[bots.migrating]\n{body}\n",
            VALID.replace("bots = [\"support\"]", "bots = [\"*\"]")
        ))
    };
    assert_eq!(
        bot("backends = []"),
        ["`bots.migrating`: `backends` must list at least one backend"]
    );
    assert_eq!(
        bot("provider = \"chatbase\"\nchatbot_id = \"a\"\n\
             [[bots.migrating.backends]]\nprovider = \"chatbase\"\nchatbot_id = \"b\""),
        ["`bots.migrating`: set either `provider` + `chatbot_id` or `backends`, not both"]
    );
    assert_eq!(
        bot("provider = \"chatbase\""),
        ["`bots.migrating`: needs `provider` and `chatbot_id` (or a `backends` list)"]
    );
    assert_eq!(
        bot(
            "[[bots.migrating.backends]]\nprovider = \"chatbase\"\nchatbot_id = \"a\"\n\
             [[bots.migrating.backends]]\nprovider = \"ghost\"\nchatbot_id = \" \"\n\
             [[bots.migrating.backends]]\nprovider = \"chatbase\"\nchatbot_id = \"a\""
        ),
        [
            "`bots.migrating.backends[1].provider`: names provider `ghost`, which is not \
             defined (defined: `chatbase`)",
            "`bots.migrating.backends[1].chatbot_id`: must not be empty",
            "`bots.migrating.backends[2]`: lists the same provider and chatbot_id twice",
        ]
    );
}

#[test]
fn a_bot_with_two_backends_keeps_their_order() {
    let config = valid(&format!(
        "{VALID}{}[bots.migrating]\n\
         [[bots.migrating.backends]]\nprovider = \"chatling\"\nchatbot_id = 5551234001\n\
         [[bots.migrating.backends]]\nprovider = \"chatbase\"\nchatbot_id = \"ckl123abc456\"\n",
        provider("chatling", "")
    ));
    let backends: Vec<(&str, &str)> = config.bots["migrating"]
        .backends
        .iter()
        .map(|b| (b.provider.as_str(), b.chatbot_id.as_str()))
        .collect();
    assert_eq!(
        backends,
        [("chatling", "5551234001"), ("chatbase", "ckl123abc456")]
    );
}

#[test]
fn rejects_bot_names_unfit_for_query_strings() {
    assert_eq!(
        problems(
            &VALID
                .replace("[bots.support]", "[bots.\"sup port\"]")
                .replace("bots = [\"support\"]", "bots = [\"*\"]")
        ),
        ["`bots.sup port`: a bot name must be 1-128 characters of letters, digits, `_`, `-` or `.`"]
    );
}

// --- all at once, and where values came from -------------------------------

#[test]
fn reports_every_problem_at_once() {
    let toml = r#"
[providers.chatbase]
base_url = "ftp://example.com"

[providers.acme]
api_key = "x"

[bots.support]
provider = "chatbse"
chatbot_id = "abc"

[clients.a]
key = "short"
bots = ["support", "ghost"]
"#;
    let err = from_toml_str(toml).unwrap_err();
    assert_eq!(
        err.problems,
        [
            "`providers.acme`: unknown provider kind `acme` (known: `chatbase`, `chatzuri`, \
             `chatling`, `chatbase_v2`); set `kind` when the table name is not a kind",
            "`providers.chatbase.api_key`: is required (or set \
             CHATGATE_PROVIDERS__CHATBASE__API_KEY)",
            "`providers.chatbase.base_url`: \"ftp://example.com\" must start with http:// or \
             https://",
            "`bots.support.provider`: names provider `chatbse`, which is not defined \
             (defined: `acme`, `chatbase`)",
            "`clients.a.key`: must be at least 16 characters",
            "`clients.a.bots`: names bot `ghost`, which is not defined (defined: `support`)",
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (6 problem(s)):\n  - `providers.acme`"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 7, "{text}");
}

/// The real environment provider's metadata over values given here, so the
/// origin of an environment value is tested without touching the process
/// environment (which other tests read concurrently).
struct FakeEnv(&'static str);

impl Provider for FakeEnv {
    fn metadata(&self) -> Metadata {
        env_provider().metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Toml::string(self.0).data()
    }
}

#[test]
fn a_value_from_the_environment_is_named_by_its_variable() {
    let figment = Figment::new().merge(Toml::string(VALID)).merge(FakeEnv(
        "providers.chatbase.max_pause_secs = 0\nserver.workers = 2",
    ));
    let err = from_figment(&figment, Path::new("<inline>")).unwrap_err();
    assert_eq!(
        err.problems,
        ["`providers.chatbase.max_pause_secs` (environment variable \
             CHATGATE_PROVIDERS__CHATBASE__MAX_PAUSE_SECS): must be from 1 to 86400 (got 0)"]
    );
    assert_eq!(
        origin(&figment, "server.workers"),
        "`server.workers` (environment variable CHATGATE_SERVER__WORKERS)"
    );
}

#[test]
fn the_environment_overrides_the_file_and_secrets_may_live_only_there() {
    let figment = Figment::new()
        .merge(Toml::string(
            &VALID.replace("api_key = \"sk-chatbase-secret\"", "timeout_ms = 0"),
        ))
        .merge(FakeEnv(
            "providers.chatbase.api_key = 12345\nproviders.chatbase.timeout_ms = 700",
        ));
    let config = from_figment(&figment, Path::new("<inline>")).unwrap();
    let p = &config.providers["chatbase"];
    assert_eq!(p.timeout, Duration::from_millis(700));
    // A numeric secret from the environment is still a string key.
    assert_eq!(secrecy::ExposeSecret::expose_secret(&p.api_key), "12345");
}

#[test]
fn a_value_from_the_file_is_named_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chatgate.toml");
    std::fs::write(&path, format!("[cache]\nttl_secs = 31536001\n{VALID}")).unwrap();
    let figment = Figment::new().merge(Toml::file_exact(&path));
    let err = from_figment(&figment, &path).unwrap_err();
    assert_eq!(
        err.problems,
        [format!(
            "`cache.ttl_secs` in {}: must be from 0 to 31536000 (got 31536001)",
            path.display()
        )]
    );
}

#[test]
fn load_refuses_a_missing_file_naming_how_to_point_at_one() {
    let err = load(Path::new("/nonexistent/chatgate.toml")).unwrap_err();
    assert_eq!(
        err.problems,
        ["config file /nonexistent/chatgate.toml not found \
          (set --config PATH or CHATGATE_CONFIG)"]
    );
}

// --- secrets ----------------------------------------------------------------

#[test]
fn debug_never_prints_a_secret() {
    let config = valid(VALID);
    let hash = hex::encode(config.clients[0].key_sha256);
    let text = format!("{config:?} {:#?}", config.providers["chatbase"]);
    for secret in ["sk-chatbase-secret", "analytics-key-0123456789", &hash] {
        assert!(!text.contains(secret), "{secret} printed in:\n{text}");
    }
    assert!(text.contains("api_key: \"[redacted]\""), "{text}");
    assert!(text.contains("key_sha256: \"[redacted]\""), "{text}");
    // The hash is not printed as bytes either.
    let bytes = format!("{:?}", config.clients[0].key_sha256);
    assert!(!text.contains(&bytes[1..20]), "{text}");
}

#[test]
fn problems_never_quote_a_secret() {
    let twin = "[clients.twin]\nkey = \"analytics-key-0123456789\"\nbots = [\"*\"]";
    let text = from_toml_str(&format!(
        "{}\n{twin}",
        VALID.replace(
            "[bots.support]",
            "[providers.acme]\napi_key = \"sk-acme\"\n[bots.support]"
        )
    ))
    .unwrap_err()
    .to_string();
    for secret in ["sk-chatbase-secret", "sk-acme", "analytics-key-0123456789"] {
        assert!(!text.contains(secret), "{secret} printed in:\n{text}");
    }
}

// --- [redis] ---------------------------------------------------------------

#[test]
fn without_a_redis_table_no_store_is_configured() {
    assert!(valid(VALID).redis.is_none());
}

#[test]
fn a_redis_table_takes_its_url_prefix_and_timeout() {
    let config = valid(&format!(
        "{VALID}\n[redis]\nurl = \"redis://cache.internal:6380/2\"\nkey_prefix = \"prod:\"\ntimeout_ms = 20\n"
    ));
    let redis = config.redis.expect("[redis] is set");
    assert_eq!(redis.display_url(), "redis://cache.internal:6380/2");
    assert_eq!(redis.key_prefix, "prod:");
    assert_eq!(redis.timeout, Duration::from_millis(20));
    let defaults = valid(&format!("{VALID}\n[redis]\nurl = \"redis://127.0.0.1\"\n"))
        .redis
        .expect("[redis] is set");
    assert_eq!(defaults.key_prefix, "chatgate:");
    assert_eq!(defaults.timeout, Duration::from_millis(50));
}

#[test]
fn rejects_a_redis_url_of_another_scheme_without_echoing_it() {
    let found = problems_with("[redis]\nurl = \"http://user:hunter2-s3cret@cache:6379\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("`redis.url`"), "{found:?}");
    assert!(found[0].contains("redis://"), "{found:?}");
    assert!(!found[0].contains("hunter2"), "{found:?}");
}

#[test]
fn rejects_every_redis_problem_at_once_and_unknown_keys() {
    let found = problems_with("[redis]\nkey_prefix = \"\"\ntimeout_ms = 0\n");
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("redis.url"), "{found:?}");
    assert!(found[1].contains("redis.key_prefix"), "{found:?}");
    assert!(found[2].contains("redis.timeout_ms"), "{found:?}");
    let typo = problems_with("[redis]\nurl = \"redis://h\"\ntimeout = 5\n");
    assert!(typo.iter().any(|p| p.contains("timeout")), "{typo:?}");
}

#[test]
fn the_redis_password_never_prints() {
    let config = valid(&format!(
        "{VALID}\n[redis]\nurl = \"redis://svc:hunter2-s3cret@cache.internal/0\"\n"
    ));
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("svc:"), "{debug}");
    assert!(debug.contains("redis://cache.internal:6379/0"), "{debug}");
}
