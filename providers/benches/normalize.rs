//! SPEC §10: normalizing a 100-conversation page must cost at most 1.5× a plain
//! `serde_json` parse + serialize of the same bytes. Both run in one group, so
//! the ratio is read from one run: `cargo bench -p chatgate-providers`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use chatgate_providers::{
    adapter, json, AdapterOptions, ListQuery, PageSize, ProviderKind, Step, Target,
    UpstreamResponse,
};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

/// A Chatbase v1 page of 100 conversations of 6 messages each, shaped as documented.
fn chatbase_page() -> Bytes {
    let data: Vec<Value> = (0..100)
        .map(|i| {
            let messages: Vec<Value> = (0..6)
                .map(|m| {
                    json!({
                        "role": if m % 2 == 0 { "user" } else { "assistant" },
                        "content": format!("Message {m} of conversation {i}: how do I change the billing plan on my account?"),
                    })
                })
                .collect();
            let source = ["API", "WhatsApp", "Widget or Iframe", "Chatbase site"][i % 4];
            json!({
                "id": format!("conv_{i:016x}"),
                "chatbot_id": "ckl123abc456",
                "created_at": format!("2024-06-{:02}T12:{:02}:00Z", 1 + i % 28, i % 60),
                "updated_at": format!("2024-06-{:02}T12:{:02}:30Z", 1 + i % 28, i % 60),
                "customer": format!("customer-{i}@example.com"),
                "source": source,
                "messages": messages,
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&json!({ "data": data })).unwrap())
}

/// A Chatling v2 list page of 100 conversations (envelope, newest-first messages).
fn chatling_page() -> Bytes {
    let conversations: Vec<Value> = (0..100)
        .map(|i| {
            let messages: Vec<Value> = (0..6)
                .rev()
                .map(|m| {
                    let mut msg = json!({
                        "text": format!("Message {m} of conversation {i}: how do I change the billing plan on my account?"),
                        "role": if m % 2 == 0 { "user" } else { "bot" },
                        "created_at": format!("2024-06-14T15:{:02}:{:02}+00:00", i % 60, m * 5),
                    });
                    if m % 2 == 1 {
                        msg["is_ai_kb_response"] = json!(true);
                        msg["data"] = json!({"helpful_value": null, "sources": [
                            {"type": "webpage", "title": "Billing plans", "url": "https://docs.example.com/billing"}
                        ]});
                    }
                    msg
                })
                .collect();
            json!({
                "id": format!("{}", 8_977_617_953u64 + i),
                "contact_id": format!("qtr89df0-112d-d197-b541-{i:012}"),
                "archived": 0,
                "important": 1,
                "created_at": format!("2024-06-14T15:{:02}:00+00:00", 59 - i % 60),
                "messages": messages,
            })
        })
        .collect();
    let body = json!({"status": "success", "data": {
        "pages": {"current_page": 1, "last_page": 1, "per_page": 100},
        "conversations": conversations,
    }});
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

fn normalize(kind: ProviderKind, body: &Bytes) -> Vec<u8> {
    let query = ListQuery {
        size: PageSize::new(100).unwrap(),
        ..ListQuery::default()
    };
    let target = Target {
        bot: "support",
        chatbot_id: "ckl123abc456",
    };
    let hint = std::num::NonZeroU32::new(100);
    let mut op = adapter(kind, &AdapterOptions::default()).list(target, &query, hint);
    let Step::Send(_) = op.start().unwrap() else {
        unreachable!("a list asks the vendor")
    };
    let response = UpstreamResponse {
        status: 200,
        retry_after: None,
        body: body.clone(),
        // Any fixed time: the adapters take it as an input and never read the clock.
        received_at: Utc.with_ymd_and_hms(2024, 6, 14, 15, 45, 34).unwrap(),
    };
    let Step::Done(result) = op.on_response(response).unwrap() else {
        unreachable!("one page answers a 100-conversation window")
    };
    // As the server writes an answer: one buffer, sized beforehand.
    let conversations = &result.page.conversations;
    let mut out = Vec::with_capacity(json::estimated_len(conversations));
    json::conversations(&mut out, conversations);
    out
}

fn roundtrip(body: &Bytes) -> Vec<u8> {
    let value: Value = serde_json::from_slice(body).unwrap();
    serde_json::to_vec(&value).unwrap()
}

fn bench(c: &mut Criterion) {
    for (kind, body) in [
        (ProviderKind::Chatbase, chatbase_page()),
        (ProviderKind::Chatling, chatling_page()),
    ] {
        assert!(!normalize(kind, &body).is_empty());
        let mut group = c.benchmark_group(format!("{kind}_100_conversations"));
        group.bench_function("baseline_serde_value_roundtrip", |b| {
            b.iter(|| roundtrip(black_box(&body)))
        });
        group.bench_function("normalize", |b| {
            b.iter(|| normalize(kind, black_box(&body)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
