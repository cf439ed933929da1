//! The emulator's shared state: data sets, Chatling settings, the vendors' rate limits,
//! faults and the request log.
//!
//! Shared by every worker of the server and by the test or CLI that started it, so all of
//! it sits behind locks or atomics. Locks are held only for short copies; a poisoned lock
//! is recovered (every update here is a single push/replace, so a panic elsewhere cannot
//! leave the data half-written).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::faults::{self, Fault, FaultKind};
use super::store::BotData;
use super::{data, Vendor};

/// How many recorded requests are kept (the oldest are dropped first).
const REQUEST_LOG_CAPACITY: usize = 100_000;

/// Chatling's list page size in its documentation example.
const DEFAULT_CHATLING_PER_PAGE: u32 = 5;
/// Chatling's messages page size in its documentation.
const DEFAULT_CHATLING_MESSAGES_PER_PAGE: u32 = 15;

/// Everything the emulator knows; cheap to share (`Arc`) between the server and tests.
pub struct EmulatorState {
    bots: RwLock<HashMap<(Vendor, String), Arc<BotData>>>,
    chatling_per_page: AtomicU32,
    chatling_messages_per_page: AtomicU32,
    chatling_rate: Mutex<RateWindow>,
    chatbase_v2_rate: Mutex<SlidingWindow>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<VecDeque<RecordedRequest>>,
    counts: [AtomicU64; 4],
    started: std::time::Instant,
}

/// One vendor request as the emulator received it, for tests that count or inspect
/// upstream calls. The bearer key itself is never stored, only whether it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The vendor whose prefix the path is under.
    pub vendor: Vendor,
    /// HTTP method (`GET`, `POST`).
    pub method: String,
    /// Full path, vendor prefix included, without the query.
    pub path: String,
    /// The raw (still percent-encoded) query string, empty when there is none.
    pub query: String,
    /// The request body as (lossy) UTF-8, `None` when empty.
    pub body: Option<String>,
    /// Whether `Authorization: Bearer <key>` carried this vendor's key.
    pub auth_ok: bool,
    /// The `X-Request-Id` header, when sent (to check the gateway propagates it).
    pub request_id: Option<String>,
    /// When it arrived, in milliseconds since the emulator started (set when
    /// recorded), so tests can check how calls are spaced in time.
    #[serde(default)]
    pub received_ms: u64,
}

/// Chatling's per-minute call counter: calls are counted per wall-clock minute, as
/// Chatling's documentation says its window "resets at the next minute".
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    per_minute: Option<u32>,
    minute: u64,
    calls: u64,
}

impl RateWindow {
    /// Counts one call made during `minute` (minutes since the Unix epoch) and says
    /// whether it is over the limit.
    pub(crate) fn over_limit(&mut self, minute: u64) -> bool {
        let Some(limit) = self.per_minute else {
            return false;
        };
        if minute != self.minute {
            self.minute = minute;
            self.calls = 0;
        }
        self.calls += 1;
        self.calls > u64::from(limit)
    }
}

/// Chatbase v2's documented limit: so many requests per 10-second *sliding* window
/// ("scoped per API key and IP"; here per emulator). Refused requests do not count,
/// which the docs leave open.
#[derive(Debug, Default)]
pub(crate) struct SlidingWindow {
    limit: Option<u32>,
    accepted: VecDeque<Instant>,
}

impl SlidingWindow {
    /// The documented window.
    pub(crate) const WINDOW: Duration = Duration::from_secs(10);

    /// Counts a request made at `now`: `None` when it is within the limit, else the
    /// whole seconds (at least 1) until the oldest request of the window slides out,
    /// the `Retry-After` to answer.
    pub(crate) fn over_limit(&mut self, now: Instant) -> Option<u64> {
        let limit = self.limit?;
        while self
            .accepted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Self::WINDOW)
        {
            self.accepted.pop_front();
        }
        if self.accepted.len() < limit as usize {
            self.accepted.push_back(now);
            return None;
        }
        let oldest = self.accepted.front().copied().unwrap_or(now);
        let left = Self::WINDOW.saturating_sub(now.saturating_duration_since(oldest));
        Some(left.as_secs_f64().ceil().max(1.0) as u64)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EmulatorState {
    /// A state holding the deterministic data set for `seed`: [`CHATBASE_BOT`] (137
    /// conversations), [`CHATBASE_EMPTY_BOT`] (none), [`CHATZURI_BOT`] (64),
    /// [`CHATLING_BOT`] (83), and the Chatbase v2 agents [`CHATBASE_V2_BOT`] (161) and
    /// [`CHATBASE_V2_EMPTY_BOT`] (none), default Chatling page sizes, no faults, no
    /// rate limits.
    ///
    /// [`CHATBASE_BOT`]: super::CHATBASE_BOT
    /// [`CHATBASE_EMPTY_BOT`]: super::CHATBASE_EMPTY_BOT
    /// [`CHATZURI_BOT`]: super::CHATZURI_BOT
    /// [`CHATLING_BOT`]: super::CHATLING_BOT
    /// [`CHATBASE_V2_BOT`]: super::CHATBASE_V2_BOT
    /// [`CHATBASE_V2_EMPTY_BOT`]: super::CHATBASE_V2_EMPTY_BOT
    pub fn new(seed: u64) -> Arc<EmulatorState> {
        let bots = data::generate(seed)
            .into_iter()
            .map(|set| {
                let key = (set.vendor, set.bot.to_owned());
                (key, Arc::new(BotData::new(set.vendor, set.conversations)))
            })
            .collect();
        Arc::new(EmulatorState {
            bots: RwLock::new(bots),
            chatling_per_page: AtomicU32::new(DEFAULT_CHATLING_PER_PAGE),
            chatling_messages_per_page: AtomicU32::new(DEFAULT_CHATLING_MESSAGES_PER_PAGE),
            chatling_rate: Mutex::new(RateWindow::default()),
            chatbase_v2_rate: Mutex::new(SlidingWindow::default()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(VecDeque::new()),
            counts: Default::default(),
            started: std::time::Instant::now(),
        })
    }

    /// A bot's conversations as the vendor's list returns them (newest first by
    /// `created_at`, Chatbase v2's `createdAt`), each the vendor-native object with its
    /// messages as the vendor stores them. Empty for an unknown bot. Tests use this as the expected data.
    pub fn conversations(&self, vendor: Vendor, bot: &str) -> Vec<Value> {
        self.bot(vendor, bot)
            .map(|data| data.convs.iter().map(|c| c.value.clone()).collect())
            .unwrap_or_default()
    }

    /// Replaces (or creates) a bot's data set with these vendor-native objects, so tests
    /// can build exactly the case they need. They are sorted newest first by
    /// `created_at` (Chatbase v2: `createdAt`), stable for equal timestamps; objects
    /// without a parseable one go last.
    pub fn set_conversations(&self, vendor: Vendor, bot: &str, convs: Vec<Value>) {
        let data = Arc::new(BotData::new(vendor, convs));
        self.bots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((vendor, bot.to_owned()), data);
    }

    /// Sets the page size of Chatling's conversation list (default 5, its doc example;
    /// 0 is treated as 1). The gateway must learn it from the answers, never assume it.
    pub fn set_chatling_per_page(&self, per_page: u32) {
        self.chatling_per_page
            .store(per_page.max(1), Ordering::Relaxed);
    }

    /// Sets the page size of Chatling's messages endpoint (default 15; 0 is treated as 1).
    pub fn set_chatling_messages_per_page(&self, per_page: u32) {
        self.chatling_messages_per_page
            .store(per_page.max(1), Ordering::Relaxed);
    }

    /// Enables Chatling's per-minute limit: with `Some(n)` the (n+1)-th Chatling call
    /// within one wall-clock minute (whatever the key) gets 429
    /// `{"status":"error","message":"Too many requests"}` without `Retry-After`, as
    /// Chatling documents. `None` (the default) disables it.
    pub fn set_chatling_rate_limit(&self, per_minute: Option<u32>) {
        let mut window = lock(&self.chatling_rate);
        window.per_minute = per_minute;
        window.calls = 0;
    }

    /// Enables Chatbase v2's rate limit: with `Some(n)`, a request after `n` within the
    /// last 10 seconds (a sliding window, as documented) gets 429
    /// `RATE_LIMIT_TOO_MANY_REQUESTS` with `Retry-After`. `None` (the default)
    /// disables it. The documented production value is 100.
    pub fn set_chatbase_v2_rate_limit(&self, per_10s: Option<u32>) {
        let mut window = lock(&self.chatbase_v2_rate);
        window.limit = per_10s;
        window.accepted.clear();
    }

    /// Adds a fault after the existing ones (the first matching fault applies).
    pub fn add_fault(&self, fault: Fault) {
        if fault.times == Some(0) {
            return;
        }
        lock(&self.faults).push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// The vendor requests received, oldest first (the last 100 000 only).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).iter().cloned().collect()
    }

    /// How many requests this vendor received since start or the last
    /// [`clear_requests`](Self::clear_requests), faulted ones included; not bounded by
    /// the log's capacity.
    pub fn request_count(&self, vendor: Vendor) -> u64 {
        self.counts[vendor.index()].load(Ordering::Relaxed)
    }

    /// Forgets the recorded requests and resets the counts.
    pub fn clear_requests(&self) {
        let mut log = lock(&self.log);
        log.clear();
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
    }

    /// The current data set of a bot, if it exists.
    pub(crate) fn bot(&self, vendor: Vendor, bot: &str) -> Option<Arc<BotData>> {
        self.bots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(vendor, bot.to_owned()))
            .cloned()
    }

    pub(crate) fn chatling_per_page(&self) -> u32 {
        self.chatling_per_page.load(Ordering::Relaxed)
    }

    pub(crate) fn chatling_messages_per_page(&self) -> u32 {
        self.chatling_messages_per_page.load(Ordering::Relaxed)
    }

    /// Counts a Chatling call against the per-minute limit; true when it is over.
    pub(crate) fn chatling_over_limit(&self) -> bool {
        let minute = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() / 60)
            .unwrap_or(0);
        lock(&self.chatling_rate).over_limit(minute)
    }

    /// Counts a Chatbase v2 call against its sliding window; `Some(retry_after)` when it
    /// is over.
    pub(crate) fn chatbase_v2_over_limit(&self) -> Option<u64> {
        lock(&self.chatbase_v2_rate).over_limit(Instant::now())
    }

    /// The fault to apply to this request, if any (consuming one of its `times`).
    pub(crate) fn take_fault(&self, vendor: Vendor, path: &str) -> Option<FaultKind> {
        let mut list = lock(&self.faults);
        if list.is_empty() {
            return None;
        }
        faults::take_matching(&mut list, vendor, path)
    }

    /// Appends a request to the log and counts it.
    pub(crate) fn record(&self, mut request: RecordedRequest) {
        request.received_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut log = lock(&self.log);
        self.counts[request.vendor.index()].fetch_add(1, Ordering::Relaxed);
        if log.len() >= REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CHATBASE_BOT, CHATBASE_EMPTY_BOT, CHATLING_BOT, CHATZURI_BOT};
    use serde_json::json;

    fn request(vendor: Vendor) -> RecordedRequest {
        RecordedRequest {
            vendor,
            method: "GET".into(),
            path: "/p".into(),
            query: String::new(),
            body: None,
            auth_ok: true,
            request_id: None,
            received_ms: 0,
        }
    }

    #[test]
    fn new_state_holds_the_documented_bots() {
        let state = EmulatorState::new(7);
        assert_eq!(
            state.conversations(Vendor::Chatbase, CHATBASE_BOT).len(),
            137
        );
        assert_eq!(
            state
                .conversations(Vendor::Chatbase, CHATBASE_EMPTY_BOT)
                .len(),
            0
        );
        assert!(state.bot(Vendor::Chatbase, CHATBASE_EMPTY_BOT).is_some());
        assert_eq!(
            state.conversations(Vendor::Chatzuri, CHATZURI_BOT).len(),
            64
        );
        assert_eq!(
            state.conversations(Vendor::Chatling, CHATLING_BOT).len(),
            83
        );
        assert!(
            state.bot(Vendor::Chatzuri, CHATBASE_BOT).is_none(),
            "vendors do not share bots"
        );
    }

    #[test]
    fn set_conversations_creates_a_bot_sorted_newest_first() {
        let state = EmulatorState::new(1);
        state.set_conversations(
            Vendor::Chatzuri,
            "custom",
            vec![
                json!({"id": "old", "created_at": "2024-01-01T00:00:00Z"}),
                json!({"id": "new", "created_at": "2024-02-01T00:00:00Z"}),
            ],
        );
        let ids: Vec<Value> = state
            .conversations(Vendor::Chatzuri, "custom")
            .into_iter()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(ids, [json!("new"), json!("old")]);
    }

    #[test]
    fn request_log_is_bounded_but_counts_are_not() {
        let state = EmulatorState::new(1);
        for _ in 0..REQUEST_LOG_CAPACITY + 5 {
            state.record(request(Vendor::Chatling));
        }
        state.record(request(Vendor::Chatbase));
        assert_eq!(state.requests().len(), REQUEST_LOG_CAPACITY);
        assert_eq!(
            state.request_count(Vendor::Chatling),
            REQUEST_LOG_CAPACITY as u64 + 5
        );
        assert_eq!(state.request_count(Vendor::Chatbase), 1);
        assert_eq!(
            state.requests().last().map(|r| r.vendor),
            Some(Vendor::Chatbase)
        );
        state.clear_requests();
        assert!(state.requests().is_empty());
        assert_eq!(state.request_count(Vendor::Chatling), 0);
    }

    #[test]
    fn rate_window_counts_per_wall_clock_minute() {
        let mut w = RateWindow::default();
        assert!(!w.over_limit(10), "no limit set");
        w.per_minute = Some(2);
        w.calls = 0;
        assert!(!w.over_limit(100));
        assert!(!w.over_limit(100));
        assert!(w.over_limit(100));
        assert!(w.over_limit(100));
        assert!(!w.over_limit(101), "the window resets at the next minute");
        w.per_minute = Some(0);
        assert!(w.over_limit(102));
    }

    #[test]
    fn sliding_window_refuses_past_the_limit_until_the_oldest_slides_out() {
        let mut w = SlidingWindow::default();
        let t0 = Instant::now();
        assert_eq!(w.over_limit(t0), None, "no limit set");
        w.limit = Some(2);
        w.accepted.clear();
        assert_eq!(w.over_limit(t0), None);
        assert_eq!(w.over_limit(t0 + Duration::from_secs(3)), None);
        assert_eq!(w.over_limit(t0 + Duration::from_secs(4)), Some(6));
        assert_eq!(
            w.over_limit(t0 + Duration::from_millis(9_500)),
            Some(1),
            "rounded up"
        );
        assert_eq!(w.over_limit(t0 + Duration::from_secs(10)), None);
        assert_eq!(w.over_limit(t0 + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn zero_times_fault_is_ignored_and_clear_removes_faults() {
        let state = EmulatorState::new(1);
        state.add_fault(Fault {
            vendor: None,
            path_contains: None,
            times: Some(0),
            kind: FaultKind::Malformed,
        });
        assert_eq!(state.take_fault(Vendor::Chatbase, "/x"), None);
        state.add_fault(Fault {
            vendor: None,
            path_contains: None,
            times: None,
            kind: FaultKind::Malformed,
        });
        assert_eq!(
            state.take_fault(Vendor::Chatbase, "/x"),
            Some(FaultKind::Malformed)
        );
        state.clear_faults();
        assert_eq!(state.take_fault(Vendor::Chatbase, "/x"), None);
    }
}
