//! Dual-read bots (SPEC §8): one newest-first stream over several backends.
//!
//! Page N of a merged bot is exactly what a client would get by merging every
//! backend's full (filtered) stream newest first and slicing
//! `[(N-1)·size, N·size)`. Equal `created_at` values keep the backends' config
//! order, then each vendor's own order, so the result is deterministic. The same
//! vendor conversation id from the same backend is never returned twice.
//!
//! Each backend is read in fixed chunks of [`CHUNK`] conversations (its page
//! `k` of size 100) through a chunk cache, and a k-way merge walks per-backend
//! cursors over them, fetching the chunks several backends need concurrently.
//! Because chunks are cached (for the response cache's `ttl`), paging a merged bot
//! from page 1 to the end reads each backend chunk once: the upstream cost of the
//! whole walk is the same as reading every backend once, i.e. O(total
//! conversations / vendor page size) vendor calls, not O(pages²). The cost of one
//! page N is the chunks covering the first N·size + 1 merged conversations that are
//! not cached yet — at most one new chunk per backend for sequential paging.

use std::collections::HashSet;
use std::sync::Arc;

use chatgate_providers::{Conversation, ListQuery, Page, PageNumber, PageSize};
use futures_util::future::join_all;

use crate::cache::{BackendId, CacheStatus, Stored, SwrCache, Weigh};
use crate::config::{Backend, BotConfig};
use crate::gateway::{Gateway, UpstreamStats};
use crate::server::error::{ApiError, UpstreamFailure};
use crate::upstream::Upstream;

/// Conversations per backend chunk: the largest page every vendor accepts.
pub const CHUNK: u32 = 100;

/// Typed backend chunks, shared by every request for a merged bot.
pub type ChunkCache = SwrCache<ChunkKey, Chunk>;

/// One chunk of one backend's filtered stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    bot: String,
    backend: BackendId,
    /// Filters plus `page = chunk + 1`, `size = CHUNK`.
    query: ListQuery,
}

impl Weigh for ChunkKey {
    fn weigh(&self) -> usize {
        self.bot.len() + self.backend.weigh() + std::mem::size_of::<ListQuery>()
    }
}

/// Conversations `[k·CHUNK, (k+1)·CHUNK)` of a backend's stream.
#[derive(Debug)]
pub struct Chunk {
    conversations: Vec<Conversation>,
    has_more: bool,
    weight: usize,
}

impl Weigh for Chunk {
    fn weigh(&self) -> usize {
        self.weight
    }
}

impl From<Page> for Chunk {
    fn from(page: Page) -> Self {
        let weight = page.conversations.iter().map(approx_size).sum();
        Self {
            conversations: page.conversations,
            has_more: page.has_more,
            weight,
        }
    }
}

/// Roughly the memory a normalized conversation holds.
fn approx_size(c: &Conversation) -> usize {
    let messages: usize = c
        .messages
        .iter()
        .map(|m| {
            96 + m.content.len()
                + m.vendor_role.as_ref().map_or(0, String::len)
                + m.sources
                    .iter()
                    .map(|s| {
                        48 + [&s.kind, &s.title, &s.url]
                            .iter()
                            .map(|f| f.as_ref().map_or(0, |v| v.len()))
                            .sum::<usize>()
                    })
                    .sum::<usize>()
        })
        .sum();
    let raw = c.raw.as_ref().map_or(0, |r| r.get().len());
    256 + c.id.len()
        + c.chatbot_id.len()
        + c.customer.as_ref().map_or(0, String::len)
        + messages
        + raw
}

/// A position in one backend's stream.
struct Cursor<'a> {
    backend: &'a Backend,
    /// Index of the next conversation in the backend's stream.
    pos: u64,
    chunk: Option<Arc<Stored<Chunk>>>,
    /// The chunk `chunk` holds.
    chunk_index: u64,
    exhausted: bool,
}

impl Cursor<'_> {
    fn head(&self) -> Option<&Conversation> {
        let chunk = self.chunk.as_ref()?;
        if self.pos / u64::from(CHUNK) != self.chunk_index {
            return None;
        }
        chunk
            .conversations
            .get((self.pos % u64::from(CHUNK)) as usize)
    }

    /// Whether the chunk for `pos` must be read (the head is not loaded and the
    /// stream may go on).
    fn needs_chunk(&mut self) -> Option<u64> {
        if self.exhausted || self.head().is_some() {
            return None;
        }
        let wanted = self.pos / u64::from(CHUNK);
        if let Some(chunk) = &self.chunk {
            if wanted == self.chunk_index {
                // Past the end of the loaded chunk: the stream ended there.
                self.exhausted = true;
                return None;
            }
            if wanted == self.chunk_index + 1 && !chunk.has_more {
                self.exhausted = true;
                return None;
            }
        }
        Some(wanted)
    }
}

/// A k-way merge over a bot's backends, from given per-backend positions.
///
/// The API builds a page by walking it from the start; `export` keeps one across
/// pages and checkpoints [`Merger::positions`], so a long export reads each
/// backend exactly once whatever the cache holds.
pub struct Merger<'a> {
    bot: &'a BotConfig,
    cursors: Vec<Cursor<'a>>,
    seen: HashSet<(usize, String)>,
    status: CacheStatus,
    bypass: bool,
}

impl<'a> Merger<'a> {
    /// A merge of `bot`'s backends starting at `positions` (one per backend, in
    /// config order; `None` starts every backend at its beginning).
    pub fn new(bot: &'a BotConfig, positions: Option<&[u64]>, bypass: bool) -> Self {
        let cursors = bot
            .backends
            .iter()
            .enumerate()
            .map(|(i, backend)| Cursor {
                backend,
                pos: positions.and_then(|p| p.get(i).copied()).unwrap_or(0),
                chunk: None,
                chunk_index: 0,
                exhausted: false,
            })
            .collect();
        Self {
            bot,
            cursors,
            seen: HashSet::new(),
            status: CacheStatus::Hit,
            bypass,
        }
    }

    /// How far each backend has been consumed, in config order.
    pub fn positions(&self) -> Vec<u64> {
        self.cursors.iter().map(|c| c.pos).collect()
    }

    /// How the chunk cache served the chunks read so far.
    pub fn status(&self) -> CacheStatus {
        self.status
    }

    /// Loads every missing head at once, one chunk per backend, concurrently.
    async fn fill(
        &mut self,
        gw: &Gateway,
        upstream: &Upstream,
        query: &ListQuery,
        request_id: &str,
        stats: &UpstreamStats,
    ) -> Result<(), ApiError> {
        let wanted: Vec<(usize, u64)> = self
            .cursors
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.needs_chunk().map(|k| (i, k)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let bot = self.bot;
        let fetches = wanted.iter().map(|&(i, k)| {
            let backend = self.cursors[i].backend;
            chunk(
                gw,
                upstream,
                bot,
                backend,
                query,
                k,
                request_id,
                self.bypass,
                stats,
            )
        });
        // Results in config order: the first failing backend's error wins.
        for ((i, k), result) in wanted.iter().zip(join_all(fetches).await) {
            let (loaded, chunk_status) = result?;
            self.status = self.status.max(chunk_status);
            let cursor = &mut self.cursors[*i];
            cursor.chunk = Some(loaded);
            cursor.chunk_index = *k;
            if cursor.head().is_none() {
                cursor.exhausted = true;
            }
        }
        Ok(())
    }

    /// The backend whose head is newest; on equal times the earliest in config
    /// order.
    fn best(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, c) in self.cursors.iter().enumerate() {
            let Some(head) = c.head() else { continue };
            let newer = match best.and_then(|b| self.cursors[b].head()) {
                None => true,
                Some(current) => head.created_at > current.created_at,
            };
            if newer {
                best = Some(i);
            }
        }
        best
    }

    /// Whether another conversation follows.
    pub async fn has_next(
        &mut self,
        gw: &Gateway,
        upstream: &Upstream,
        query: &ListQuery,
        request_id: &str,
        stats: &UpstreamStats,
    ) -> Result<bool, ApiError> {
        loop {
            self.fill(gw, upstream, query, request_id, stats).await?;
            let Some(i) = self.best() else {
                return Ok(false);
            };
            let head = self.cursors[i].head().expect("`best` has a head");
            if !self.seen.contains(&(i, head.id.clone())) {
                return Ok(true);
            }
            // A repeat of an id this backend already gave: skip it for good.
            self.cursors[i].pos += 1;
        }
    }

    /// The next conversation of the merged stream, or `None` at its end.
    pub async fn next(
        &mut self,
        gw: &Gateway,
        upstream: &Upstream,
        query: &ListQuery,
        request_id: &str,
        stats: &UpstreamStats,
    ) -> Result<Option<Conversation>, ApiError> {
        if !self
            .has_next(gw, upstream, query, request_id, stats)
            .await?
        {
            return Ok(None);
        }
        let i = self.best().expect("has_next found a head");
        let cursor = &mut self.cursors[i];
        let conversation = cursor.head().cloned().expect("`best` has a head");
        cursor.pos += 1;
        self.seen.insert((i, conversation.id.clone()));
        Ok(Some(conversation))
    }
}

/// One page of a bot with several backends, and how the chunk cache served it.
pub async fn merged_page(
    gw: &Gateway,
    upstream: &Upstream,
    bot: &BotConfig,
    query: &ListQuery,
    request_id: &str,
    bypass: bool,
    stats: &UpstreamStats,
) -> Result<(Page, CacheStatus), ApiError> {
    let size = query.size.get() as usize;
    refuse_unreachable(gw, bot, query, bypass, stats)?;
    let mut merger = Merger::new(bot, None, bypass);
    for _ in 0..query.window_start() {
        if merger
            .next(gw, upstream, query, request_id, stats)
            .await?
            .is_none()
        {
            break;
        }
    }
    let mut conversations = Vec::with_capacity(size);
    while conversations.len() < size {
        match merger.next(gw, upstream, query, request_id, stats).await? {
            Some(c) => conversations.push(c),
            None => break,
        }
    }
    let has_more = conversations.len() == size
        && merger
            .has_next(gw, upstream, query, request_id, stats)
            .await?;
    Ok((
        Page {
            conversations,
            has_more,
        },
        merger.status(),
    ))
}

/// Refuses at once, before any vendor call, a page that the request's call
/// budget cannot reach: when no chunk can come from the cache (bypassed or
/// disabled), skipping `window_start` conversations takes at least one chunk
/// read per [`CHUNK`] of them, so a deep page asked with `no-cache` is answered
/// cheaply instead of spending the budget first.
fn refuse_unreachable(
    gw: &Gateway,
    bot: &BotConfig,
    query: &ListQuery,
    bypass: bool,
    stats: &UpstreamStats,
) -> Result<(), ApiError> {
    let cold = bypass || !gw.chunks().is_enabled();
    let (Some(left), Some(budget)) = (stats.calls_left(), stats.budget()) else {
        return Ok(());
    };
    let needed = query.window_start().div_ceil(u64::from(CHUNK));
    if cold && needed > u64::from(left) {
        let kind = gw.runtime(&bot.backends[0])?.kind();
        return Err(ApiError::upstream(
            kind,
            UpstreamFailure::CallBudget(budget.get()),
        ));
    }
    Ok(())
}

/// Chunk `k` of one backend, through the chunk cache.
#[allow(clippy::too_many_arguments)]
async fn chunk(
    gw: &Gateway,
    upstream: &Upstream,
    bot: &BotConfig,
    backend: &Backend,
    query: &ListQuery,
    k: u64,
    request_id: &str,
    bypass: bool,
    stats: &UpstreamStats,
) -> Result<(Arc<Stored<Chunk>>, CacheStatus), ApiError> {
    let page = u32::try_from(k + 1)
        .ok()
        .and_then(PageNumber::new)
        .ok_or_else(|| {
            ApiError::InvalidRequest(
                "the page lies beyond what the backends can be read to".to_owned(),
            )
        })?;
    let chunk_query = ListQuery {
        page,
        size: PageSize::new(CHUNK).expect("CHUNK is a valid page size"),
        ..query.clone()
    };
    let key = ChunkKey {
        bot: bot.name.clone(),
        backend: gw.backend_id(backend)?,
        query: chunk_query.clone(),
    };
    let fetch = async {
        gw.backend_page(
            upstream,
            &bot.name,
            backend,
            &chunk_query,
            request_id,
            stats,
        )
        .await
        .map(Chunk::from)
    };
    gw.chunks().get_or_fetch(key, bypass, fetch).await
}
