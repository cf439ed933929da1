#!/usr/bin/env bash
# chatgate's memory and miss-coalescing targets (SPEC §10), against the built-in
# emulator (`chatgate emulate`), on loopback:
#   a. RSS under sustained load over KEYS distinct cache keys (default 100,000)
#      stays within cache.max_bytes + 64 MiB. The emulator answers every
#      Chatbase call with the realistic 10-conversation page of
#      bench/gen_pages.py (an injected 200 fault, so every key's body is a real
#      ~25 KB page, not one of the seeded bot's few short pages); wrk asks for
#      page=1…KEYS of one bot (the page number is part of the cache key), each
#      key once, over 32 connections. cache.max_bytes is MAX_BYTES_MIB (default
#      32). Peak RSS is the gateway's VmHWM;
#   b. BURST concurrent identical misses (default 10,000), one connection each,
#      make exactly one vendor call, counted by the emulator's control API
#      (/_emulator/requests). The emulator delays Chatbase answers by DELAY_MS
#      (default 20000: sending 10k requests takes seconds on a busy core) so
#      every request is sent before the vendor answers (bench/burst.py reports
#      when the last was sent and the first answered; PASS needs that too).
#      The gateway's client burst is raised to admit them all; `ulimit -n` is
#      raised to 20,000 for the gateway and the client.
# The gateway runs one worker pinned to core SERVER_CPU (default 1), the
# emulator on the same core, the load on LOAD_CPU (default 0); default log level.
# Needs wrk, taskset, curl, python3. Prints a Markdown table (also kept in
# target/bench/); exits 1 when a target is not met. KEEP_WORK=1 keeps the logs.
# Usage: scripts/memory.sh [longest seconds for part a, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
max_secs=${1:-300}
keys=${KEYS:-100000}
burst=${BURST:-10000}
max_mib=${MAX_BYTES_MIB:-32}
delay_ms=${DELAY_MS:-20000}
load_cpu=${LOAD_CPU:-0}
server_cpu=${SERVER_CPU:-1}
for tool in wrk taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "memory.sh needs $tool" >&2; exit 1; }
done
ulimit -n 20000 || { echo "memory.sh needs ulimit -n 20000 (raise the hard limit)" >&2; exit 1; }
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --release --quiet --bin chatgate
bin=$PWD/target/release/chatgate
out_dir=$PWD/target/bench
mkdir -p "$out_dir"
# shellcheck source=bench/lib.sh
source bench/lib.sh memory
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
count_calls() { curl -sf "http://127.0.0.1:$emu/_emulator/requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["chatbase"])'; }

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
machine="$(nproc) cores, ${cpu:-unknown CPU}, Linux $(uname -r)"
python3 bench/gen_pages.py "$work" 2>"$work/gen.log"

emu=$(free_port)
serve emu "$bin" emulate --bind 127.0.0.1:"$emu"
wait_port "$emu"
client_key=memory-test-client-key-0123456789

# gateway NAME PORT: a gateway on the emulator's Chatbase, cache max_mib.
gateway() {
  cat >"$work/$1.toml" <<TOML
[server]
bind = "127.0.0.1:$2"
workers = 1
request_timeout_ms = 120000
[cache]
ttl_secs = 3600
max_bytes = $((max_mib * 1024 * 1024))
[providers.chatbase]
base_url = "http://127.0.0.1:$emu/chatbase/api/v1"
api_key = "emu-chatbase-secret"
max_requests_per_second = 1000000
timeout_ms = 60000
[bots.bench]
provider = "chatbase"
chatbot_id = "cb-support"
[clients.load]
key = "$client_key"
bots = ["*"]
requests_per_minute = 1000000000
burst = 1000000
TOML
  serve "$1" "$bin" serve --config "$work/$1.toml"
  wait_port "$2"
}

# --- a. RSS over distinct keys -------------------------------------------------
echo "== a. $keys distinct keys, cache.max_bytes = $max_mib MiB" >&2
python3 - "$work/page-10.json" >"$work/fault.json" <<'PY'
import json, sys
body = open(sys.argv[1], encoding="utf-8").read()
print(json.dumps({"vendor": "chatbase", "kind": {"type": "status", "status": 200, "body": body}}))
PY
curl -sf -X POST --data-binary @"$work/fault.json" "http://127.0.0.1:$emu/_emulator/faults"
gw=$(free_port)
gateway keys "$gw"
cat >"$work/keys.lua" <<LUA
-- Each request a new page number, so each a new cache key; stops after $keys.
local n, done = 0, 0
wrk.headers["Authorization"] = "Bearer $client_key"
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/get-conversations?chatbotId=bench&size=10&page=" .. ((n - 1) % $keys + 1))
end
response = function(status, headers, body)
  done = done + 1
  if done >= $keys then wrk.thread:stop() end
end
LUA
rss_start=$(status_kb "${pid[keys]}" VmRSS)
curl -sf -X DELETE "http://127.0.0.1:$emu/_emulator/requests"
# wrk stops its thread after KEYS answers but would idle until its -d; the
# gateway's access log counts answers, and wrk is stopped (SIGINT: it still
# prints its figures) once they are all in.
t0=$(date +%s.%N)
taskset -c "$load_cpu" wrk -t1 -c32 -d"${max_secs}s" -s "$work/keys.lua" "http://127.0.0.1:$gw/" >"$work/wrk.out" &
wrk_pid=$!
while kill -0 "$wrk_pid" 2>/dev/null; do
  answered=$(grep -c 'path=/api/v1/get-conversations' "$work/keys.err" || true)
  if [ "$answered" -ge "$keys" ]; then kill -INT "$wrk_pid" 2>/dev/null || true; break; fi
  sleep 0.5
done
wait "$wrk_pid" || true
t1=$(date +%s.%N)
cat "$work/wrk.out" >&2
answered=$(grep -c 'path=/api/v1/get-conversations' "$work/keys.err" || true)
a_rps=$(awk -v n="$answered" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
non2xx=$(grep 'path=/api/v1/get-conversations' "$work/keys.err" | grep -vc 'status=200' || true)
a_calls=$(count_calls)
peak_kb=$(status_kb "${pid[keys]}" VmHWM)
end_kb=$(status_kb "${pid[keys]}" VmRSS)
bound_kb=$(((max_mib + 64) * 1024))
stop keys
curl -sf -X DELETE "http://127.0.0.1:$emu/_emulator/faults"
a_ok=yes
[ "$peak_kb" -le "$bound_kb" ] || a_ok=no
[ "$answered" -ge "$keys" ] || a_ok=no
[ "$non2xx" = 0 ] || a_ok=no

# --- b. concurrent identical misses ----------------------------------------------
echo "== b. $burst concurrent identical misses (vendor delayed $delay_ms ms)" >&2
curl -sf -X POST -d "{\"vendor\":\"chatbase\",\"kind\":{\"type\":\"delay\",\"ms\":$delay_ms}}" \
  "http://127.0.0.1:$emu/_emulator/faults"
gw=$(free_port)
gateway burst "$gw"
curl -sf -X DELETE "http://127.0.0.1:$emu/_emulator/requests"
burst_json=$(taskset -c "$load_cpu" python3 bench/burst.py 127.0.0.1 "$gw" \
  "/api/v1/get-conversations?chatbotId=bench&size=100" "$burst" \
  --header "Authorization: Bearer $client_key")
echo "$burst_json" >&2
b_calls=$(count_calls)
b_peak_kb=$(status_kb "${pid[burst]}" VmHWM)
stop burst
read -r b_ok b_200 b_sent b_first < <(python3 -c '
import json, sys
r = json.loads(sys.argv[1]); n = int(sys.argv[2]); calls = int(sys.argv[3])
ok200 = r["status"].get("200", 0)
together = r["last_sent_s"] is not None and r["first_answer_s"] is not None and r["last_sent_s"] < r["first_answer_s"]
print("yes" if ok200 == n and calls == 1 and together else "no", ok200, r["last_sent_s"], r["first_answer_s"])
' "$burst_json" "$burst" "$b_calls")

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
verdict() { if [ "$1" = yes ]; then echo "**PASS**"; else echo "**FAIL**"; fi; }
stamp=$(date -u +%Y-%m-%dT%H%MZ)
{
  echo "Machine: $machine. $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| target | measured | result |"
  echo "|---|---|---|"
  printf '| a. peak RSS ≤ cache.max_bytes (%s MiB) + 64 MiB = %s MiB, over %s distinct keys | peak %s MiB (%s MiB at start, %s MiB at the end); %s answers, %s not 200, %s vendor calls, %s req/s | %s |\n' \
    "$max_mib" "$((max_mib + 64))" "$keys" "$(mib "$peak_kb")" "$(mib "$rss_start")" \
    "$(mib "$end_kb")" "$answered" "$non2xx" "$a_calls" "$a_rps" "$(verdict "$a_ok")"
  printf '| b. %s concurrent identical misses → exactly 1 vendor call | %s vendor call(s); %s × 200; last request sent at %s s, first answer at %s s (vendor delay %s ms); gateway peak RSS %s MiB | %s |\n' \
    "$burst" "$b_calls" "$b_200" "$b_sent" "$b_first" "$delay_ms" "$(mib "$b_peak_kb")" "$(verdict "$b_ok")"
} | tee "$out_dir/memory-$stamp.md"
echo "(kept in target/bench/memory-$stamp.md)" >&2
[ "$a_ok" = yes ] && [ "$b_ok" = yes ]
