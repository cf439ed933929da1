# Shared by scripts/load.sh and scripts/memory.sh (sourced, not run): a work
# dir, servers started pinned to the server core and stopped by PID, ports.
# Expects `server_cpu` set; sets `work` (under $1, a name) and `pids`/`pid`.

work=$(mktemp -d "${TMPDIR:-/tmp}/chatgate-$1.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "logs and configs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
# serve NAME CMD…: start a server pinned to the server core; its PID in pid[NAME].
declare -A pid
serve() { local name=$1; shift; taskset -c "$server_cpu" "$@" >"$work/$name.out" 2>"$work/$name.err" & pid[$name]=$!; pids+=($!); }
stop() { local p=${pid[$1]}; kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }
