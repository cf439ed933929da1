//! Where a cursor-paged vendor's streams were left, so reading pages 1, 2, 3 …
//! in order costs one vendor call per vendor page instead of a walk from the
//! first cursor for every page (README "Vendors", Chatbase v2).
//!
//! A list operation of a cursor-paged adapter returns the [`ResumePoint`]s it
//! reached (its window's start and end); the gateway keeps them here, per
//! provider, keyed by the stream they belong to (the vendor bot and the filters:
//! sources and dates; not `page`, `size` or `include`, which do not change the
//! stream) and by their position in it, and hands the nearest one at or before
//! the next window's start back to [`Adapter::list_from`]. A point is a hint:
//! the adapter walks from the first page when one does not fit, so forgetting
//! one (capacity, expiry, another gateway process) costs calls, never a wrong
//! page.
//!
//! Bounded in time and size: a point is used for [`TTL`] (vendors document no
//! cursor lifetime, and an expired one costs a refused call and a walk), and at
//! most [`CAPACITY`] are kept per provider, expired ones dropped first, then the
//! oldest.
//!
//! [`Adapter::list_from`]: chatgate_providers::Adapter::list_from

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chatgate_providers::{ListQuery, ResumePoint, Source};
use chrono::NaiveDate;

/// How long a remembered point is handed out: long enough for a reader paging
/// through a bot, short enough that a cursor the vendor has since expired is
/// rarely tried.
pub const TTL: Duration = Duration::from_secs(15 * 60);

/// Points kept per provider (each a cursor of at most 2 KiB and a key).
pub const CAPACITY: usize = 4096;

/// One stream of one vendor bot: what a point is valid for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Stream {
    chatbot_id: String,
    sources: Option<BTreeSet<Source>>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
}

impl Stream {
    fn of(chatbot_id: &str, query: &ListQuery) -> Self {
        Self {
            chatbot_id: chatbot_id.to_owned(),
            sources: query.sources.clone(),
            start: query.dates.start(),
            end: query.dates.end(),
        }
    }
}

/// The points of one provider.
#[derive(Debug, Default)]
pub struct ResumePoints {
    points: Mutex<BTreeMap<(Stream, u64), (ResumePoint, Instant)>>,
}

impl ResumePoints {
    /// The live point of `query`'s stream nearest at or before its window's
    /// start.
    pub fn nearest(
        &self,
        chatbot_id: &str,
        query: &ListQuery,
        now: Instant,
    ) -> Option<ResumePoint> {
        let stream = Stream::of(chatbot_id, query);
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        points
            .range((stream.clone(), 0)..=(stream, query.window_start()))
            .rev()
            .find(|(_, (_, at))| fresh(*at, now))
            .map(|(_, (point, _))| point.clone())
    }

    /// Keeps the points an operation on `query`'s stream reached.
    pub fn remember(
        &self,
        chatbot_id: &str,
        query: &ListQuery,
        reached: &[ResumePoint],
        now: Instant,
    ) {
        if reached.is_empty() {
            return;
        }
        let stream = Stream::of(chatbot_id, query);
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        for point in reached {
            points.insert((stream.clone(), point.position), (point.clone(), now));
        }
        if points.len() > CAPACITY {
            points.retain(|_, (_, at)| fresh(*at, now));
        }
        while points.len() > CAPACITY {
            let oldest = points
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => points.remove(&key),
                None => break,
            };
        }
    }
}

fn fresh(at: Instant, now: Instant) -> bool {
    now.checked_duration_since(at).is_none_or(|age| age < TTL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use chatgate_providers::{DateRange, PageNumber, PageSize};

    fn query(page: u32, size: u32) -> ListQuery {
        ListQuery {
            page: PageNumber::new(page).expect("a valid page"),
            size: PageSize::new(size).expect("a valid size"),
            ..ListQuery::default()
        }
    }

    fn point(position: u64) -> ResumePoint {
        ResumePoint {
            position,
            cursor: Some(format!("c{position}")),
            skip: 0,
        }
    }

    #[test]
    fn the_nearest_point_at_or_before_the_window_is_handed_back_for_any_size() {
        let store = ResumePoints::default();
        let now = Clock::from(ManualClock::new()).now();
        store.remember("bot", &query(1, 10), &[point(10), point(20)], now);
        assert_eq!(store.nearest("bot", &query(3, 10), now), Some(point(20)));
        assert_eq!(store.nearest("bot", &query(2, 10), now), Some(point(10)));
        assert_eq!(store.nearest("bot", &query(4, 5), now), Some(point(10)));
        assert_eq!(store.nearest("bot", &query(1, 10), now), None);
        assert_eq!(store.nearest("other-bot", &query(3, 10), now), None);
    }

    #[test]
    fn points_belong_to_their_filters() {
        let store = ResumePoints::default();
        let now = Clock::from(ManualClock::new()).now();
        let mut filtered = query(1, 10);
        filtered.sources = Some([Source::Whatsapp].into_iter().collect());
        store.remember("bot", &filtered, &[point(10)], now);
        assert_eq!(store.nearest("bot", &query(2, 10), now), None);
        let mut dated = filtered.clone();
        dated.page = PageNumber::new(2).expect("a valid page");
        dated.include_raw = true;
        assert_eq!(store.nearest("bot", &dated, now), Some(point(10)));
        dated.dates =
            DateRange::new(None, NaiveDate::from_ymd_opt(2024, 1, 1)).expect("an open range");
        assert_eq!(store.nearest("bot", &dated, now), None);
    }

    #[test]
    fn points_expire_after_the_ttl() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let store = ResumePoints::default();
        store.remember("bot", &query(1, 10), &[point(10)], clock.now());
        manual.advance(TTL - Duration::from_secs(1));
        assert_eq!(
            store.nearest("bot", &query(2, 10), clock.now()),
            Some(point(10))
        );
        manual.advance(Duration::from_secs(1));
        assert_eq!(store.nearest("bot", &query(2, 10), clock.now()), None);
    }

    #[test]
    fn the_store_is_bounded_oldest_first() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let store = ResumePoints::default();
        for i in 0..=CAPACITY as u64 {
            store.remember("bot", &query(1, 1), &[point(i + 1)], clock.now());
            manual.advance(Duration::from_millis(1));
        }
        let len = store.points.lock().expect("not poisoned").len();
        assert_eq!(len, CAPACITY);
        // The first point went; the second is still there.
        assert_eq!(store.nearest("bot", &query(2, 1), clock.now()), None);
        assert_eq!(
            store.nearest("bot", &query(3, 1), clock.now()),
            Some(point(2))
        );
    }
}
