#!/usr/bin/env python3
"""The Markdown tables of scripts/load.sh, from its raw figures.

Input: a TSV of `size  row  metric  round  value` lines (metric: rps, p50 and
p99 in ms, rss_kb, vendor_bytes, body_bytes, vendor_calls, failures: answers
not 2xx/3xx plus socket errors of one wrk run). Medians over the
rounds; "added" latency is the row's 1-connection p50/p99 minus the direct
call's. A throughput ratio is the median of the per-round ratios (the row
against its baseline, both measured in that round, seconds apart), with their
range: on a shared machine the speed of the whole host drifts between rounds
by more than the differences measured, and a ratio of two medians taken from
different rounds would carry that drift into the verdict.

Usage: bench/report.py results.tsv
"""

import collections
import statistics
import sys

# row -> (baseline row, target ratio or None, the target's name)
RATIO = {
    "nginx": ("direct", None),
    "miss": ("nginx", None),  # target depends on the page size, below
    "hit": ("bare", 0.9),
    "miss+redis": ("miss", None),
    "hit+redis": ("hit", 0.7),
    "emu:cb": ("emu:direct", None),
    "emu:cl": ("emu:cb", None),
}
MISS_TARGET = {"100": 0.5, "10": 0.8}
# Added 1-connection latency targets (ms) on the miss path, 100-conversation page.
ADDED_TARGET = {("100", "miss"): (0.3, 1.0)}
REDIS_P50_TARGET = 0.2
LABEL = {
    "direct": "upstream direct (nginx static file, the vendor)",
    "nginx": "nginx `proxy_pass` in front of it",
    "miss": "chatgate miss (cache off)",
    "bare": "bare actix-web, chatgate's exact body",
    "hit": "chatgate hit (cache on, warmed)",
    "miss+redis": "chatgate miss + `[redis]`",
    "hit+redis": "chatgate hit + `[redis]`",
    "emu:direct": "emulator Chatbase, called directly",
    "emu:cb": "chatgate miss → emulator Chatbase",
    "emu:cl": "chatgate miss → emulator Chatling (assembled)",
}
# How a baseline is named in the ratio column.
BASE_NAME = {"direct": "direct", "nginx": "nginx", "bare": "bare", "miss": "without Redis",
             "hit": "without Redis", "emu:direct": "emulator direct",
             "emu:cb": "the Chatbase miss"}
# The latency a row adds is over the vendor's, except a hit's: over bare actix.
ADDED_BASE = {"hit": "bare", "hit+redis": "bare"}
ORDER = ["direct", "nginx", "miss", "miss+redis", "bare", "hit", "hit+redis"]
EMU_ORDER = ["emu:direct", "emu:cb", "emu:cl"]


class Figures(dict):
    """The medians (failures: the sums) by (size, row, metric), and each
    round's figure in `rounds`."""

    def __init__(self, data):
        # Failures are added up over every run; everything else is a median.
        super().__init__({k: sum(v.values()) if k[2] == "failures" else statistics.median(v.values())
                          for k, v in data.items()})
        self.rounds = data

    def ratio(self, size, row, base):
        """The median and range of `row`'s req/s over `base`'s, round by
        round (rounds where both ran), or None."""
        a, b = self.rounds.get((size, row, "rps"), {}), self.rounds.get((size, base, "rps"), {})
        per_round = sorted(a[r] / b[r] for r in a if b.get(r))
        if not per_round:
            return None
        return statistics.median(per_round), per_round[0], per_round[-1]


def load(path):
    data = collections.defaultdict(dict)
    with open(path) as f:
        for line in f:
            size, row, metric, rnd, value = line.rstrip("\n").split("\t")
            runs = data[(size, row, metric)]
            # Figures without rounds (RSS, sizes) are recorded once, as round 0;
            # failures may be recorded twice in a round (throughput, latency).
            runs[rnd] = runs.get(rnd, 0.0) + float(value) if metric == "failures" else float(value)
    return Figures(data)


def fmt_ratio(ratio, name, target=None):
    """`0.46× nginx (rounds 0.41–0.52)`, with the verdict when there is a target."""
    r, low, high = ratio
    low, high = "{:.2f}".format(low), "{:.2f}".format(high)
    rest = (" " + name if name else "") + (" (rounds {}–{})".format(low, high) if high != low else "")
    if target is None:
        return "{:.2f}×{}".format(r, rest)
    return "**{:.2f}×**{} (≥ {}: {})".format(r, rest, target, verdict(r >= target))


def fmt_rps(v):
    return "{:,.0f}".format(v)


def fmt_ms(v):
    return "{:.3f}".format(v)


def fmt_added(v):
    return "{:+.3f}".format(v)


def verdict(ok):
    return "met" if ok else "**not met**"


def table(m, size, order, direct):
    out = ["| row | req/s | ratio | p50 ms | p99 ms | added p50 ms | added p99 ms | peak RSS |",
           "|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in order:
        rps = m.get((size, row, "rps"))
        if rps is None:
            continue
        ratio = ""
        if row in RATIO:
            base, target = RATIO[row]
            if row == "miss":
                target = MISS_TARGET.get(size)
            r = m.ratio(size, row, base)
            if r is not None:
                ratio = fmt_ratio(r, BASE_NAME.get(base, base), target)
        p50, p99 = m.get((size, row, "p50")), m.get((size, row, "p99"))
        added50 = added99 = ""
        if row not in (direct, "bare") and p50 is not None:
            base = ADDED_BASE.get(row, direct)
            d50, d99 = m[(size, base, "p50")], m[(size, base, "p99")]
            added50, added99 = fmt_added(p50 - d50), fmt_added(p99 - d99)
            if (size, row) in ADDED_TARGET:
                t50, t99 = ADDED_TARGET[(size, row)]
                added50 += " (≤ {}: {})".format(t50, verdict(p50 - d50 <= t50))
                added99 += " (≤ {}: {})".format(t99, verdict(p99 - d99 <= t99))
        rss = m.get((size, row, "rss_kb"))
        out.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            LABEL.get(row, row), fmt_rps(rps), ratio,
            fmt_ms(p50) if p50 is not None else "", fmt_ms(p99) if p99 is not None else "",
            added50, added99, "{:.1f} MiB".format(rss / 1024) if rss else ""))
    return out


def main():
    m = load(sys.argv[1])
    lines = []
    for size in ("100", "10"):
        if (size, "direct", "rps") not in m:
            continue
        vb, bb = m.get((size, "page", "vendor_bytes")), m.get((size, "page", "body_bytes"))
        lines.append("**{} conversations** (vendor page {:,.0f} bytes, chatgate's body {:,.0f} bytes)".format(
            size, vb or 0, bb or 0))
        lines.append("")
        lines += table(m, size, ORDER, "direct")
        lines.append("")
    if ("emu", "emu:direct", "rps") in m:
        calls = ", ".join("{}: {:.0f}".format(LABEL[r].split("→ ")[-1], m[("emu", r, "vendor_calls")])
                          for r in ("emu:cb", "emu:cl") if ("emu", r, "vendor_calls") in m)
        lines.append("**Emulator, 10 conversations per gateway page** (vendor calls per page: {})".format(calls))
        lines.append("")
        lines += table(m, "emu", EMU_ORDER, "emu:direct")
        lines.append("")
    # What Redis adds, per page size.
    redis = ["| page | path | req/s with / without | p50 added by Redis | p99 added by Redis |",
             "|---|---|---:|---:|---:|"]
    for size in ("100", "10"):
        for row in ("hit", "miss"):
            with_r, without = (size, row + "+redis"), (size, row)
            if with_r + ("rps",) not in m or without + ("rps",) not in m:
                continue
            r = m.ratio(size, row + "+redis", row)
            if r is None:
                continue
            d50 = m[with_r + ("p50",)] - m[without + ("p50",)]
            d99 = m[with_r + ("p99",)] - m[without + ("p99",)]
            ratio = fmt_ratio(r, "", 0.7 if row == "hit" else None)
            redis.append("| {} | {} | {} | {} (≤ {}: {}) | {} |".format(
                size, row, ratio, fmt_added(d50), REDIS_P50_TARGET,
                verdict(d50 <= REDIS_P50_TARGET), fmt_added(d99)))
    if len(redis) > 2:
        lines.append("**What `[redis]` costs** (same config with and without it, same run)")
        lines.append("")
        lines += redis
        rss = m.get(("all", "redis-server", "rss_kb"))
        if rss:
            lines.append("")
            lines.append("redis-server peak RSS: {:.1f} MiB.".format(rss / 1024))
    failed = ["{} ({}): {:.0f}".format(LABEL.get(row, row), size, n)
              for (size, row, metric), n in sorted(m.items())
              if metric == "failures" and n > 0]
    lines.append("")
    if failed:
        lines.append("Answers not 2xx/3xx or socket errors, over all runs: " + "; ".join(failed) + ".")
    else:
        lines.append("Every answer of every run was 2xx.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
