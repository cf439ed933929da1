#!/usr/bin/env bash
# Instructions per request (user space, counted by valgrind's callgrind), for
# the rows of scripts/load.sh that are chatgate's own work: the miss and hit
# paths at 100 and 10 conversations, the bare-actix anchor returning the same
# bytes, and a Chatling page assembled through the emulator. Unlike req/s,
# the count barely moves with a busy machine, so a change can be judged on
# this 2-core box while other work runs; load.sh gives the wall-clock ratios.
# Method: each server runs under callgrind; WARM requests warm it (cache,
# connection pool, allocator), its counters are zeroed, then `wrk -c1` sends
# requests on one keep-alive connection for SECONDS, as load.sh's latency rows
# do, and the dump's total is divided by the requests wrk completed.
# The kernel's share (syscalls, copies) is not in these numbers.
# Needs valgrind (callgrind_control), wrk, nginx, python3.
# Usage: bench/instructions.sh [seconds of wrk, default 5] [rows: hit miss bare chatling, default all]
# With CALLGRIND_KEEP=1 the dumps stay in the work dir for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
shift || true
want=" ${*:-hit miss bare chatling} "
warm=50
server_cpu=${SERVER_CPU:-1}
for tool in valgrind callgrind_control wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "instructions.sh needs $tool" >&2; exit 1; }
done
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --release --quiet --bin chatgate --example bare
bin=$PWD/target/release/chatgate
bare_bin=$PWD/target/release/examples/bare
# shellcheck source=bench/lib.sh
source bench/lib.sh instructions
[ -n "${CALLGRIND_KEEP:-}" ] && KEEP_WORK=1
python3 bench/gen_pages.py "$work" 2>"$work/gen.log"
client_key=instructions-client-key-0123456789

# requests URL COUNT [header]: COUNT GETs on one keep-alive connection, each
# answer checked to be 200.
requests() {
  python3 - "$@" <<'PY'
import http.client, sys, urllib.parse
url, count = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
headers = dict([sys.argv[3].split(": ", 1)]) if len(sys.argv) > 3 else {}
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
path = url.path + ("?" + url.query if url.query else "")
for _ in range(count):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{url.geturl()}: {r.status}")
PY
}

# measure NAME PORT URL [header]: instructions per request of the server NAME
# (started under callgrind) listening on PORT.
measure() {
  local name=$1 port=$2 url=$3; shift 3
  wait_port "$port"
  requests "$url" "$warm" "$@"
  callgrind_control -z "${pid[$name]}" >/dev/null 2>&1
  local hdr=() out count dump total
  [ $# -gt 0 ] && hdr=(-H "$1")
  out=$(wrk -t1 -c1 -d"${secs}s" "${hdr[@]}" "$url")
  callgrind_control -d "${pid[$name]}" >/dev/null 2>&1
  count=$(awk '/requests in/ {print $1}' <<<"$out")
  if grep -q -e Non-2xx -e 'Socket errors' <<<"$out"; then echo "$name: errors: $out" >&2; exit 1; fi
  dump=$(ls -t "$work/cg-$name".*.* | head -1)
  total=$(awk '/^totals:/ {print $2}' "$dump")
  printf '| %s | %s | %s |\n' "$name" "$(python3 -c "print(f'{$total / $count:,.0f}')")" "$count"
  stop "$name"
}
grind() {
  local name=$1; shift
  serve "$name" valgrind --tool=callgrind --callgrind-out-file="$work/cg-$name.%p" "$@"
}

up=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  types { }
  default_type application/json;
  client_body_temp_path $work/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$up;
    location = /api/v1/get-conversations {
      root $work;
      rewrite ^ /page-\$arg_size.json break;
    }
  }
}
NGINX
serve nginx nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf"
wait_port "$up"

# gateway_config FILE PORT CACHE(true|false) [PROVIDERS_AND_BOTS]: the
# default is one Chatbase provider on the nginx upstream and its bot `bench`.
gateway_config() {
  local rest=${4:-"[providers.vendor]
kind = \"chatbase\"
base_url = \"http://127.0.0.1:$up/api/v1\"
api_key = \"bench-vendor-secret\"
max_requests_per_second = 1000000
[bots.bench]
provider = \"vendor\"
chatbot_id = \"ckl123abc456\""}
  cat >"$1" <<TOML
[server]
bind = "127.0.0.1:$2"
workers = 1
[cache]
enabled = $3
ttl_secs = 3600
$rest
[clients.load]
key = "$client_key"
bots = ["*"]
requests_per_minute = 1000000000
burst = 1000000
TOML
}

a="Authorization: Bearer $client_key"
echo "Instructions per request, user space, wrk -c1 for $secs s after $warm requests to warm ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', uncommitted changes')):"
echo
echo "| row | instructions | requests |"
echo "|---|---:|---:|"
for size in 100 10; do
  path="/api/v1/get-conversations?chatbotId=bench&size=$size"
  for row in miss hit; do
    case $want in *" $row "*) ;; *) continue ;; esac
    port=$(free_port)
    cache=false; [ "$row" = hit ] && cache=true
    gateway_config "$work/$row-$size.toml" "$port" "$cache"
    grind "$row-$size" "$bin" serve --config "$work/$row-$size.toml"
    measure "$row-$size" "$port" "http://127.0.0.1:$port$path" "$a"
  done
  case $want in *" bare "*) ;; *) continue ;; esac
  port=$(free_port)
  curl -sf "http://127.0.0.1:$up/api/v1/get-conversations?size=$size" >/dev/null
  # The bare anchor returns chatgate's body for this page.
  body_port=$(free_port)
  gateway_config "$work/body-$size.toml" "$body_port" false
  serve "body-$size" "$bin" serve --config "$work/body-$size.toml"
  wait_port "$body_port"
  curl -sf -H "$a" "http://127.0.0.1:$body_port$path" >"$work/body-$size.json"
  stop "body-$size"
  grind "bare-$size" "$bare_bin" "127.0.0.1:$port" "$work/body-$size.json" 1
  measure "bare-$size" "$port" "http://127.0.0.1:$port/"
done

case $want in *" chatling "*) ;; *) exit 0 ;; esac
emu=$(free_port); port=$(free_port)
serve emu "$bin" emulate --bind 127.0.0.1:"$emu"
wait_port "$emu"
gateway_config "$work/emu.toml" "$port" false "[providers.chatling]
base_url = \"http://127.0.0.1:$emu/chatling/v2\"
api_key = \"emu-chatling-secret\"
max_requests_per_second = 1000000
[providers.chatbase]
base_url = \"http://127.0.0.1:$emu/chatbase/api/v1\"
api_key = \"emu-chatbase-secret\"
max_requests_per_second = 1000000
[bots.cl]
provider = \"chatling\"
chatbot_id = \"5551234001\"
[bots.cb]
provider = \"chatbase\"
chatbot_id = \"cb-support\""
for bot in cb cl; do
  grind "emu-$bot" "$bin" serve --config "$work/emu.toml"
  measure "emu-$bot" "$port" "http://127.0.0.1:$port/api/v1/get-conversations?chatbotId=$bot&size=10" "$a"
done
