#!/usr/bin/env bash
# End-to-end performance of chatgate against its own emulator, on loopback only
# (SPEC §10). Every figure is a ratio against a baseline measured in the same run:
#   1. cache-hit throughput vs a bare actix handler returning the same bytes;
#   2. added latency of the miss path over calling the emulator directly.
# Needs `wrk` (Debian: apt-get install wrk). Takes about a minute.
# Usage: scripts/load.sh [seconds per measurement, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "load.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin chatgate --example bare
bin=target/release/chatgate
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

emu=$(free_port); gw=$(free_port); bare=$(free_port)
key=load-test-client-key-0123456789
"$bin" emulate --bind 127.0.0.1:"$emu" >/dev/null 2>&1 & pids+=($!)
wait_port "$emu"
cat >"$work/config.toml" <<TOML
[server]
bind = "127.0.0.1:$gw"
workers = 1
[cache]
ttl_secs = 3600
[providers.chatbase]
base_url = "http://127.0.0.1:$emu/chatbase/api/v1"
api_key = "emu-chatbase-secret"
max_requests_per_second = 1000000
[bots.support]
provider = "chatbase"
chatbot_id = "cb-support"
[clients.load]
key = "$key"
bots = ["*"]
requests_per_minute = 1000000000
burst = 1000000
TOML
RUST_LOG=${RUST_LOG:-info} "$bin" serve --config "$work/config.toml" 2>"$work/gateway.log" >/dev/null & pids+=($!)
wait_port "$gw"
path="/api/v1/get-conversations?chatbotId=support&size=10"
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$gw$path" >"$work/body.json"
target/release/examples/bare 127.0.0.1:"$bare" "$work/body.json" 1 >/dev/null 2>&1 & pids+=($!)
wait_port "$bare"

rps() { awk '/Requests\/sec/ {print $2}'; }
pct() { awk -v p="$1" '$1 == p {print $2}'; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }

echo "== 1. cache-hit throughput (1 worker each, wrk 1 thread x 32 connections, ${secs}s)"
bare_rps=$(wrk -t1 -c32 -d"${secs}s" "http://127.0.0.1:$bare/" | rps)
hit_rps=$(wrk -t1 -c32 -d"${secs}s" -H "Authorization: Bearer $key" "http://127.0.0.1:$gw$path" | rps)
echo "bare actix: $bare_rps req/s; chatgate HIT: $hit_rps req/s; ratio $(awk -v a="$hit_rps" -v b="$bare_rps" 'BEGIN{printf "%.2f", a/b}') (target >= 0.80)"

echo "== 2. miss path: latency added over calling the emulator directly (1 connection, ${secs}s)"
direct=$(wrk -t1 -c1 -d"${secs}s" --latency -H "Authorization: Bearer emu-chatbase-secret" \
  "http://127.0.0.1:$emu/chatbase/api/v1/get-conversations?chatbotId=cb-support&size=10")
miss=$(wrk -t1 -c1 -d"${secs}s" --latency -H "Authorization: Bearer $key" -H "Cache-Control: no-cache" \
  "http://127.0.0.1:$gw$path")
for p in 50% 99%; do
  d=$(echo "$direct" | pct "$p" | to_ms); m=$(echo "$miss" | pct "$p" | to_ms)
  echo "p$p: emulator direct ${d} ms; through chatgate ${m} ms; added $(awk -v a="$m" -v b="$d" 'BEGIN{printf "%.3f", a-b}') ms"
done
echo "(targets: added p50 <= 0.3 ms, p99 <= 2 ms)"
