#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with Schemathesis (README
# "OpenAPI"): builds chatgate (debug), starts `chatgate emulate` and
# `chatgate serve` on free loopback ports with a config that has a client key,
# waits until both answer, runs a pinned Schemathesis against /openapi.json
# with every check, bounded in examples and time, stops both processes, and
# exits non-zero when Schemathesis finds a problem. What the checks are told
# beyond the document is in scripts/api-fuzz.toml and scripts/api_fuzz_hooks.py.
#
# One worker: CPython 3.11's AST converter keeps its recursion depth per
# interpreter, not per thread, and Hypothesis parsing sources in two worker
# threads at once fails with "AST constructor recursion depth mismatch".
#
# Environment: API_FUZZ_MAX_EXAMPLES (default 100 per operation),
# API_FUZZ_MAX_TIME (seconds, default 240), API_FUZZ_SEED (default 1; a fixed
# seed makes a failure reproducible). Extra arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: a new release adds checks, and CI must not start failing on its own.
SCHEMATHESIS_VERSION=4.32.5
max_examples=${API_FUZZ_MAX_EXAMPLES:-100}
max_time=${API_FUZZ_MAX_TIME:-240}
seed=${API_FUZZ_SEED:-1}
work=target/api-fuzz
venv=target/api-fuzz-venv
key=api-fuzz-client-key-0123456789

if [ ! -x "$venv/bin/schemathesis" ] ||
  [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked --bin chatgate
bin=target/debug/chatgate
mkdir -p "$work"

# Two free loopback ports, asked of the kernel.
read -r emu_port api_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

# The emulated vendors behind one bot each, and one client allowed every bot.
# Limits are raised far beyond what the run sends: the fuzzer tests the API's
# answers, and a spent quota would answer 429 to everything after it.
cat >"$work/config.toml" <<EOF
[server]
bind = "127.0.0.1:$api_port"
workers = 2
auth_failures_per_minute = 1000000
auth_failure_burst = 1000000

[providers.chatbase]
base_url = "http://127.0.0.1:$emu_port/chatbase/api/v1"
api_key = "emu-chatbase-secret"
max_requests_per_second = 100000

[providers.chatzuri]
base_url = "http://127.0.0.1:$emu_port/chatzuri/api/v1"
api_key = "emu-chatzuri-secret"
max_requests_per_second = 100000

[providers.chatling]
base_url = "http://127.0.0.1:$emu_port/chatling/v2"
api_key = "emu-chatling-secret"
max_requests_per_second = 100000

[bots.support]
provider = "chatbase"
chatbot_id = "cb-support"

[bots.sales]
provider = "chatzuri"
chatbot_id = "cz-sales"

[bots.helpdesk]
provider = "chatling"
chatbot_id = "5551234001"

[clients.fuzz]
key = "$key"
bots = ["*"]
requests_per_minute = 100000000
burst = 1000000
EOF

pids=()
stop() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop EXIT

"$bin" emulate --bind "127.0.0.1:$emu_port" >"$work/emulate.log" 2>&1 &
pids+=($!)
RUST_LOG=warn "$bin" serve --config "$work/config.toml" >"$work/serve.log" 2>&1 &
pids+=($!)

base="http://127.0.0.1:$api_port"
for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null &&
    curl -sS -o /dev/null "http://127.0.0.1:$emu_port/" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
curl -fsS -o /dev/null "$base/readyz" || {
  echo "chatgate did not become ready; see $work/serve.log" >&2
  exit 1
}

echo "fuzzing $base (schemathesis $SCHEMATHESIS_VERSION, seed $seed, at most $max_examples examples per operation, $max_time s)" >&2
started=$(date +%s)
status=0
# Run from the work folder, where Schemathesis keeps its cache.
root=$PWD
(cd "$work" && SCHEMATHESIS_HOOKS=api_fuzz_hooks PYTHONPATH="$root/scripts" \
  "$root/$venv/bin/schemathesis" --config-file "$root/scripts/api-fuzz.toml" run "$base/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $key" \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --seed "$seed" \
  --workers 1 \
  --request-timeout 20 \
  --report junit --report-dir report \
  "$@") || status=$?
echo "schemathesis took $(($(date +%s) - started)) s; exit $status" >&2
exit "$status"
