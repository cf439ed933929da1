#!/usr/bin/env bash
# End-to-end throughput and latency of chatgate on loopback (SPEC §10), each
# figure beside a baseline measured in the same run, at two page sizes: a
# realistic 100-conversation Chatbase page (~250 KB normalized) and a
# 10-conversation one (~25 KB), both from bench/gen_pages.py. Rows:
#   direct      the "vendor": nginx serving the page as a static file for
#               /api/v1/get-conversations (query ignored), 1 process;
#   nginx       nginx `proxy_pass` in front of that upstream (keepalive to it,
#               1 process, access log on): what a plain proxy costs;
#   miss        chatgate, cache.enabled = false, its Chatbase provider pointed
#               at the upstream: every request is a vendor call + normalization.
#               Ratio: vs nginx;
#   bare        a bare actix-web handler returning chatgate's exact body for the
#               page (examples/bare.rs): the most a hit can do;
#   hit         chatgate, cache on, warmed. Ratio: vs bare;
#   miss+redis, hit+redis
#               the same two chatgate configs plus [redis] (a redis-server
#               started here): the client limit is a Redis script, and each
#               vendor call adds a read of the shared pause and the vendor
#               guard's script. Ratio: vs the same row without Redis;
#   emu: …      the built-in emulator (`chatgate emulate`): its Chatbase
#               endpoint called directly, and chatgate's miss path (cache off)
#               for a Chatbase bot and for a Chatling bot, whose page is
#               assembled from several vendor calls. Reported, no target.
# Method: wrk 1 thread x 32 connections pinned to core LOAD_CPU (default 0),
# every server pinned to core SERVER_CPU (default 1) with one worker (the
# emulator runs its default one per CPU, on that one core); chatgate at its
# default log level (one access line per request, to a file). ROUNDS
# interleaved rounds, medians reported (a throughput ratio: the median of the
# ratios of each round, row against its baseline, with their range);
# 1-connection `wrk --latency` runs give p50/p99, and "added" is p50/p99
# minus the direct row's (the emulator's direct call for the emu rows). Peak
# RSS is each server's VmHWM. Answers that are not 2xx/3xx, and socket errors,
# are counted and listed under the tables.
# Needs wrk, nginx, redis-server, taskset, curl, python3
# (Debian: apt-get install wrk nginx-light redis-server util-linux curl).
# Output: the Markdown table on stdout; it and the raw figures are also kept
# in target/bench/. KEEP_WORK=1 keeps the servers' logs and configs.
# Usage: scripts/load.sh [seconds per measurement, default 5] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
load_cpu=${LOAD_CPU:-0}
server_cpu=${SERVER_CPU:-1}
for tool in wrk nginx redis-server taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "load.sh needs $tool (see the header of $0)" >&2; exit 1; }
done
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --release --quiet --bin chatgate --example bare
bin=$PWD/target/release/chatgate
bare_bin=$PWD/target/release/examples/bare
out_dir=$PWD/target/bench
mkdir -p "$out_dir"
# shellcheck source=bench/lib.sh
source bench/lib.sh load
results=$work/results.tsv
: >"$results"
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }

# The machine, and how busy it is (the cores may be shared).
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
machine="$(nproc) cores, ${cpu:-unknown CPU}, Linux $(uname -r)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

python3 bench/gen_pages.py "$work" 2>"$work/gen.log"

# redis-server for the +redis rows, for the whole run.
redis_port=$(free_port)
mkdir -p "$work/redis"
serve redis redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" \
  --save '' --appendonly no --protected-mode yes
wait_port "$redis_port"

client_key=load-test-client-key-0123456789
auth=(-H "Authorization: Bearer $client_key")

# gateway_config FILE PORT CACHE(true|false) REDIS(yes|no) PROVIDERS_AND_BOTS
gateway_config() {
  local file=$1 port=$2 cache=$3 redis=$4 rest=$5
  {
    printf '[server]\nbind = "127.0.0.1:%s"\nworkers = 1\n' "$port"
    printf '[cache]\nenabled = %s\nttl_secs = 3600\n' "$cache"
    if [ "$redis" = yes ]; then printf '[redis]\nurl = "redis://127.0.0.1:%s/0"\n' "$redis_port"; fi
    printf '%s\n' "$rest"
    printf '[clients.load]\nkey = "%s"\nbots = ["*"]\nrequests_per_minute = 1000000000\nburst = 1000000\n' "$client_key"
  } >"$file"
}

# failures SIZE ROW ROUND WRK_OUTPUT: answers that were not 2xx/3xx and socket
# errors, recorded and shown under the table (never silently dropped).
failures() {
  local n
  n=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$4")
  record "$1" "$2" failures "$3" "$n"
  if [ "$n" != 0 ]; then echo "  $2 ($1): $n answers not 2xx/3xx or socket errors" >&2; fi
}
# throughput|latency SIZE ROW ROUND URL [wrk header args…]: one wrk run, recorded.
throughput() {
  local size=$1 row=$2 round=$3 url=$4; shift 4
  local out
  out=$(taskset -c "$load_cpu" wrk -t1 -c32 -d"${secs}s" "$@" "$url")
  record "$size" "$row" rps "$round" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  failures "$size" "$row" "$round" "$out"
}
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.4f", v}'; }
latency() {
  local size=$1 row=$2 round=$3 url=$4; shift 4
  local out
  out=$(taskset -c "$load_cpu" wrk -t1 -c1 -d"${secs}s" --latency "$@" "$url")
  failures "$size" "$row" "$round" "$out"
  record "$size" "$row" p50 "$round" "$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)"
  record "$size" "$row" p99 "$round" "$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)"
}

# run_rows SIZE ROWS…: each row is "name|url|header…" (headers separated by |);
# ROUNDS rounds of every row's throughput then every row's latency, the
# starting row rotating from round to round.
run_rows() {
  local size=$1; shift
  local rows=("$@") n=$# r i row name url
  local -a hdr
  for ((r = 1; r <= rounds; r++)); do
    for kind in throughput latency; do
      for ((i = 0; i < n; i++)); do
        row=${rows[$(((i + r - 1) % n))]}
        IFS='|' read -r -a parts <<<"$row"
        name=${parts[0]}; url=${parts[1]}; hdr=()
        for h in "${parts[@]:2}"; do hdr+=(-H "$h"); done
        echo "  round $r/$rounds $kind $name" >&2
        "$kind" "$size" "$name" "$r" "$url" "${hdr[@]}"
      done
    done
  done
}

# One phase per page size: start every server for that page, measure, stop them.
for size in 100 10; do
  echo "== $size-conversation page" >&2
  page=$work/page-$size.json
  up=$(free_port); px=$(free_port); bare=$(free_port)
  g_miss=$(free_port); g_hit=$(free_port); g_miss_r=$(free_port); g_hit_r=$(free_port)
  # The vendor: the page for /api/v1/get-conversations whatever the query.
  mkdir -p "$work/nginx-up-$size" "$work/nginx-px-$size"
  cat >"$work/nginx-up-$size/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx-up-$size/nginx.pid;
error_log $work/nginx-up-$size/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=16;
  types { }
  default_type application/json;
  client_body_temp_path $work/nginx-up-$size;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$up;
    location = /api/v1/get-conversations {
      root $work;
      rewrite ^ /page-$size.json break;
    }
  }
}
NGINX
  # The plain proxy in front of it, as a distribution's nginx would be set up:
  # keepalive to the upstream, the whole answer buffered in memory.
  cat >"$work/nginx-px-$size/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx-px-$size/nginx.pid;
error_log $work/nginx-px-$size/error.log warn;
events { worker_connections 4096; }
http {
  access_log $work/nginx-px-$size/access.log;
  client_body_temp_path $work/nginx-px-$size;
  proxy_temp_path $work/nginx-px-$size;
  keepalive_requests 1000000;
  upstream vendor {
    server 127.0.0.1:$up;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$px;
    location /api/v1/ {
      proxy_pass http://vendor;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;
      proxy_buffers 32 16k;
    }
  }
}
NGINX
  serve "up$size" nginx -e "$work/nginx-up-$size/error.log" -p "$work/nginx-up-$size" -c "$work/nginx-up-$size/nginx.conf"
  serve "px$size" nginx -e "$work/nginx-px-$size/error.log" -p "$work/nginx-px-$size" -c "$work/nginx-px-$size/nginx.conf"
  providers="[providers.vendor]
kind = \"chatbase\"
base_url = \"http://127.0.0.1:$up/api/v1\"
api_key = \"bench-vendor-secret\"
max_requests_per_second = 1000000
[bots.bench]
provider = \"vendor\"
chatbot_id = \"ckl123abc456\""
  gateway_config "$work/miss-$size.toml" "$g_miss" false no "$providers"
  gateway_config "$work/hit-$size.toml" "$g_hit" true no "$providers"
  gateway_config "$work/miss-redis-$size.toml" "$g_miss_r" false yes "$providers"
  gateway_config "$work/hit-redis-$size.toml" "$g_hit_r" true yes "$providers"
  for g in miss hit miss-redis hit-redis; do
    serve "$g$size" "$bin" serve --config "$work/$g-$size.toml"
  done
  for p in "$up" "$px" "$g_miss" "$g_hit" "$g_miss_r" "$g_hit_r"; do wait_port "$p"; done
  path="/api/v1/get-conversations?chatbotId=bench&size=$size"
  curl -sf "${auth[@]}" "http://127.0.0.1:$g_miss$path" >"$work/body-$size.json"
  for p in "$g_hit" "$g_miss_r" "$g_hit_r"; do
    curl -sf "${auth[@]}" "http://127.0.0.1:$p$path" | cmp -s - "$work/body-$size.json" \
      || { echo "gateway on port $p answers a different body" >&2; exit 1; }
  done
  serve "bare$size" "$bare_bin" 127.0.0.1:"$bare" "$work/body-$size.json" 1
  wait_port "$bare"
  record "$size" page vendor_bytes 0 "$(wc -c <"$page")"
  record "$size" page body_bytes 0 "$(wc -c <"$work/body-$size.json")"
  a="Authorization: Bearer $client_key"
  rows=(
    "direct|http://127.0.0.1:$up$path"
    "nginx|http://127.0.0.1:$px$path"
    "miss|http://127.0.0.1:$g_miss$path|$a"
    "bare|http://127.0.0.1:$bare/"
    "hit|http://127.0.0.1:$g_hit$path|$a"
    "miss+redis|http://127.0.0.1:$g_miss_r$path|$a"
    "hit+redis|http://127.0.0.1:$g_hit_r$path|$a"
  )
  run_rows "$size" "${rows[@]}"
  for pair in direct:up nginx:px miss:miss hit:hit bare:bare miss+redis:miss-redis hit+redis:hit-redis; do
    record "$size" "${pair%%:*}" rss_kb 0 "$(hwm_kb "${pid[${pair#*:}$size]}")"
  done
  for name in up px miss hit miss-redis hit-redis bare; do stop "$name$size"; done
done

echo "== emulator: Chatbase direct, chatgate -> Chatbase, chatgate -> Chatling" >&2
emu=$(free_port); g_emu=$(free_port)
serve emu "$bin" emulate --bind 127.0.0.1:"$emu"
wait_port "$emu"
gateway_config "$work/emu.toml" "$g_emu" false no "[providers.chatbase]
base_url = \"http://127.0.0.1:$emu/chatbase/api/v1\"
api_key = \"emu-chatbase-secret\"
max_requests_per_second = 1000000
[providers.chatling]
base_url = \"http://127.0.0.1:$emu/chatling/v2\"
api_key = \"emu-chatling-secret\"
max_requests_per_second = 1000000
[bots.cb]
provider = \"chatbase\"
chatbot_id = \"cb-support\"
[bots.cl]
provider = \"chatling\"
chatbot_id = \"5551234001\""
serve gw-emu "$bin" serve --config "$work/emu.toml"
wait_port "$g_emu"
# Vendor calls per gateway page, counted by the emulator.
for bot in cb cl; do
  curl -sf -X DELETE "http://127.0.0.1:$emu/_emulator/requests"
  curl -sf "${auth[@]}" "http://127.0.0.1:$g_emu/api/v1/get-conversations?chatbotId=$bot&size=10" >"$work/emu-$bot.json"
  calls=$(curl -sf "http://127.0.0.1:$emu/_emulator/requests" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["counts"].values()))')
  record emu "emu:$bot" vendor_calls 0 "$calls"
  record emu "emu:$bot" body_bytes 0 "$(wc -c <"$work/emu-$bot.json")"
done
a="Authorization: Bearer $client_key"
rows=(
  "emu:direct|http://127.0.0.1:$emu/chatbase/api/v1/get-conversations?chatbotId=cb-support&size=10|Authorization: Bearer emu-chatbase-secret"
  "emu:cb|http://127.0.0.1:$g_emu/api/v1/get-conversations?chatbotId=cb&size=10|$a"
  "emu:cl|http://127.0.0.1:$g_emu/api/v1/get-conversations?chatbotId=cl&size=10|$a"
)
run_rows emu "${rows[@]}"
record emu emu:direct rss_kb 0 "$(hwm_kb "${pid[emu]}")"
record emu emu:cb rss_kb 0 "$(hwm_kb "${pid[gw-emu]}")"
record emu emu:cl rss_kb 0 "$(hwm_kb "${pid[gw-emu]}")"
record all redis-server rss_kb 0 "$(hwm_kb "${pid[redis]}")"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stamp=$(date -u +%Y-%m-%dT%H%MZ)
{
  echo "Machine: $machine. $(date -u '+%Y-%m-%d %H:%M UTC'); wrk ${secs} s per measurement, $rounds rounds (medians); load average before $load_before, after $load_after."
  echo
  python3 bench/report.py "$results"
} | tee "$out_dir/load-$stamp.md"
cp "$results" "$out_dir/load-$stamp.tsv"
echo "(kept in target/bench/load-$stamp.md and .tsv)" >&2
