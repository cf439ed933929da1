#!/usr/bin/env python3
"""Realistic Chatbase v1 `get-conversations` answers for the benchmarks.

Writes two vendor answers in Chatbase's documented wire format
(`{"data": [{id, chatbot_id, created_at, updated_at, customer, source,
messages: [{role, content}]}]}`, vendors.md "Chatbase (API v1)"):

  page-100.json  100 conversations (about 250 KB once chatgate normalizes it)
  page-10.json   the first 10 of them (about 25 KB normalized)

Realistic text: 4-12 messages per conversation, user and assistant in turn,
user messages of one to four sentences, assistant answers averaging about 300 characters with Markdown (bold, lists,
inline code, links), escaped quotes, newlines and non-ASCII text. Compact JSON
with raw UTF-8, as a JavaScript server's `JSON.stringify` sends it; newest
conversation first. Deterministic: the same seed gives the same bytes on any
Python 3 (its own SplitMix64, not `random`).

Usage: bench/gen_pages.py OUT_DIR [--seed N]
"""

import argparse
import json
import os
import sys

MASK = (1 << 64) - 1


class SplitMix64:
    """The emulator's generator (emulator/src/data.rs), bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return self.next_u64() % n

    def range(self, lo, hi):
        """An integer in lo..=hi."""
        return lo + self.below(hi - lo + 1)

    def chance(self, percent):
        return self.below(100) < percent

    def pick(self, items):
        return items[self.below(len(items))]


TOPICS = [
    "invoice", "password", "subscription", "refund", "shipping address",
    "API key", "account email", "delivery date", "billing plan", "team seats",
    "data export", "webhook", "Slack integration", "two-factor login",
]

USER_LINES = [
    "Hi, how do I change my {t}?",
    "Where can I find my {t}? I looked under \"Account\" but it isn't there.",
    "Hello! I have a question about my {t}.",
    "My {t} looks wrong since yesterday, can you check?",
    "Can I update the {t} after checkout?",
    "Is there a way to reset my {t} without losing my data?",
    "hey, quick question about the {t}",
    "Bonjour, je n'arrive pas à modifier mon {t}. Pouvez-vous m'aider ?",
    "Hallo, wo finde ich die Einstellungen für {t}? Danke schön!",
    "Thanks, that worked. And how long does that take?",
    "I still can't see it 😕",
    "What if I'm on the free plan?",
    "Ok. Is there an API for that? Something like `GET /{t}`?",
    "こんにちは、{t}について質問があります。",
    "It says \"permission denied\" when I click Save.",
    "Great, thank you!",
]

ANSWER_OPENERS = [
    "Sure! Here's how to update your **{t}**:",
    "I'm sorry about the trouble with your {t}. Let's fix it together.",
    "Good question! The {t} lives in a couple of places:",
    "Yes, you can change the {t} at any time — here are the steps:",
    "Thanks for reaching out! I checked the help center for \"{t}\".",
    "Happy to help with the {t} 🙂",
]

ANSWER_STEPS = [
    "1. Open **Settings** → **Account**.\n2. Click *Edit* next to \"{t}\".\n3. Save, and you're done.",
    "- Go to `Settings > Billing`.\n- Select the {t} you want to change.\n- Confirm with **Update**.",
    "Open the dashboard, choose *Workspace*, then the \"{t}\" tab, and press `Save changes`.",
    "You can also do it through the API: `PATCH /v1/account` with the new {t} in the body.",
    "If the button is greyed out, ask an admin of your team — only admins can edit the {t}.",
    "Changes to the {t} take effect immediately; the confirmation email can take up to 5 minutes.",
    "Note: for accounts created before 2023, the {t} is under **Legacy settings** instead.",
]

ANSWER_CLOSERS = [
    "Anything else I can help with?",
    "Let me know if that works for you!",
    "See [our guide](https://help.example.com/articles/{slug}) for details.",
    "If it still fails, reply with the exact error message and I'll open a ticket.",
    "Merci et bonne journée ! ✅",
    "Hope that helps — have a great day!",
]

LABELS = ["API", "Chatbase site", "Instagram", "Messenger", "Slack", "WhatsApp",
          "Widget or Iframe", "Playground", "Unspecified"]
FIRST = ["ana", "ben", "chloé", "dev", "emma", "farid", "grace", "hugo", "inès",
         "jon", "kemi", "liam", "søren", "zoë"]
LAST = ["silva", "okafor", "martin", "kim", "rossi", "nguyen", "schmidt",
        "haddad", "müller", "dubois"]

# 2024-01-01T00:00:00Z and a day, in seconds.
START_2024 = 1704067200
DAY = 86400


def stamp(secs, millis=None):
    days, rem = divmod(secs, DAY)
    # Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y += m <= 2
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    frac = "" if millis is None else ".%03d" % millis
    return "%04d-%02d-%02dT%02d:%02d:%02d%sZ" % (y, m, d, hh, mm, ss, frac)


def answer(rng, topic):
    """An assistant answer: opener, one to three Markdown steps, a closer."""
    parts = [rng.pick(ANSWER_OPENERS)]
    for _ in range(rng.range(1, 3)):
        parts.append(rng.pick(ANSWER_STEPS))
    parts.append(rng.pick(ANSWER_CLOSERS))
    slug = topic.lower().replace(" ", "-")
    return "\n\n".join(parts).replace("{t}", topic).replace("{slug}", slug)


def conversation(rng, i, created):
    topic = rng.pick(TOPICS)
    messages = []
    for m in range(rng.range(4, 12)):
        if m % 2 == 0:
            lines = [rng.pick(USER_LINES) for _ in range(rng.range(1, 4))]
            sep = "\n" if rng.chance(30) else " "
            messages.append({"role": "user",
                             "content": sep.join(lines).replace("{t}", topic)})
        else:
            messages.append({"role": "assistant", "content": answer(rng, topic)})
    if rng.chance(20):
        customer = None
    else:
        customer = "%s.%s@example.com" % (rng.pick(FIRST), rng.pick(LAST))
    conv = {
        "id": "conv_%016x" % rng.next_u64(),
        "chatbot_id": "ckl123abc456",
        "created_at": stamp(created, rng.range(1, 999) if rng.chance(10) else None),
        "updated_at": stamp(created + len(messages) * rng.range(20, 240)),
        "customer": customer,
        "source": rng.pick(LABELS),
        "messages": messages,
    }
    return conv


def conversations(seed, n):
    rng = SplitMix64(seed)
    # Newest first, one to three hours apart, going back from mid-November 2024.
    t = START_2024 + 320 * DAY
    out = []
    for i in range(n):
        t -= rng.range(3600, 3 * 3600)
        out.append(conversation(rng, i, t))
    return out


def dump(convs):
    return json.dumps({"data": convs}, ensure_ascii=False, separators=(",", ":")).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    convs = conversations(args.seed, 100)
    for n in (100, 10):
        body = dump(convs[:n])
        path = os.path.join(args.out_dir, "page-%d.json" % n)
        with open(path, "wb") as f:
            f.write(body)
        answers = [len(m["content"]) for c in convs[:n] for m in c["messages"]
                   if m["role"] == "assistant"]
        msgs = sum(len(c["messages"]) for c in convs[:n])
        print("%s: %d bytes, %d conversations, %d messages, assistant answers %.0f chars on average"
              % (path, len(body), n, msgs, sum(answers) / len(answers)), file=sys.stderr)


if __name__ == "__main__":
    main()
