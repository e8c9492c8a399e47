#!/usr/bin/env bash
# On a lent GPU machine (x86-64, NVIDIA, no Node.js, no network), from the repo root with .device/ carried over
# (built by .ci/device-bundle.sh): unpacks the bundle, installs the Vulkan loader when the machine lacks it, prints
# nvidia-smi and the Dawn adapter, then runs the GPU check and the benchmarks, each with its own timeout. Every step
# writes its JSON line to $OUT/<step>.json (stderr: <step>.err) and a {"step","rc","s"} line to $OUT/steps.jsonl; a
# failed step does not stop the next. Everything ends within LETHE_DEVICE_BUDGET seconds (default 400).
#
#   .ci/device-run.sh                       # on the GPU machine (root: dpkg -x into /)
#   LETHE_DEVICE_QUICK=1 LETHE_DEVICE_SKIP_GL=1 OUT=/tmp/o .ci/device-run.sh   # a short dry run on any x86-64 box
#   LETHE_DEVICE_STEPS=doctor,parity-webgpu .ci/device-run.sh   # only the named steps (a probe before the full run)
#
# Two lanes, so the whole thing fits a few minutes: the GPU steps, then the coordinator benches (which use the many
# cores) in the foreground; the single-threaded wasm baselines in the background (one core of the machine's 16).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
budget=${LETHE_DEVICE_BUDGET:-400}
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
root=/tmp/lethe-device

log() { echo "[device-run +$(($(date +%s) - start))s] $*"; }

[ -f .device/lethe.tar.xz ] || { echo "device-run: .device/lethe.tar.xz missing: run .ci/device-bundle.sh and carry .device" >&2; exit 1; }
rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xJf .device/lethe.tar.xz || { echo "device-run: cannot unpack the bundle" >&2; exit 1; }
export PATH="$root/bin:$PATH"
unset NODE_PATH NODE_OPTIONS
log "unpacked; node $(node --version)"

# The Vulkan loader and GL dispatch libraries, only those the machine lacks (never replace its own).
if [ "${LETHE_DEVICE_SKIP_GL:-0}" != 1 ]; then
  for deb in "$root"/debs/lib*.deb; do
    for lib in $(dpkg-deb -c "$deb" | awk '{print $6}' | grep -o '[^/]*\.so\.[0-9]*$'); do # the sonames it ships
      if ! ldconfig -p | awk '{print $1}' | grep -qx "$lib"; then dpkg -x "$deb" / && log "installed $(basename "$deb")"; break; fi
    done
  done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ]; then
  export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd # the second for loaders older than 1.3.234
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
  log "Vulkan ICD $icd: $(tr -d ' \n' < "$icd")"
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 && head -n 20 "$OUT/nvidia-smi.txt" || log "nvidia-smi failed"
echo "{\"cpus\":$(nproc),\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\",\"mem_gib\":$(($(grep MemTotal /proc/meminfo | awk '{print $2}') / 1048576))}" > "$OUT/machine.json"

lethe=("$root/app/dist/cli/main.js")
check=("$root/app/dist/bench/gpu/check.js")

# step NAME CAP_S CMD...: runs CMD with the smaller of CAP_S and what is left of the budget.
step() {
  local name=$1 cap=$2 left t0 rc
  shift 2
  if [ -n "${LETHE_DEVICE_STEPS:-}" ] && [[ ",$LETHE_DEVICE_STEPS," != *",$name,"* ]]; then return; fi
  left=$((budget - ($(date +%s) - start)))
  [ "$cap" -gt "$left" ] && cap=$left
  if [ "$cap" -lt 5 ]; then
    echo "{\"step\":\"$name\",\"rc\":null,\"skipped\":\"out of budget\"}" >> "$OUT/steps.jsonl"
    log "$name: skipped, out of budget"
    return
  fi
  log "$name: start (timeout ${cap}s)"
  t0=$(date +%s.%N)
  timeout -k 10 "$cap" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  rc=$?
  local s
  s=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")
  echo "{\"step\":\"$name\",\"rc\":$rc,\"s\":$s,\"timeout_s\":$cap}" >> "$OUT/steps.jsonl"
  log "$name: rc=$rc in ${s}s$([ "$rc" = 124 ] && echo ' (timed out)')"
  [ "$rc" = 0 ] || tail -n 5 "$OUT/$name.err" | sed "s/^/  $name: /"
}

if [ "${LETHE_DEVICE_QUICK:-0}" = 1 ]; then
  core=(--steps 1 --cases tiny) aggregate=(--round-clients 20 --ingest-mib 4) nats=(--round-clients 50 --ingest-mib 4)
else
  core=() aggregate=() nats=()
fi

step doctor 60 node "${lethe[@]}" doctor --backend webgpu --json
cat "$OUT/doctor.json"

# Background lane: the wasm baselines (one thread each; bench train's memory children run one after another).
(
  step bench-wasm 150 node "${check[@]}" bench --backend wasm --steps 3 "${core[@]}"
  [ "${LETHE_DEVICE_QUICK:-0}" = 1 ] || step train-wasm 240 node "${lethe[@]}" bench train --json --backend wasm
) &
wasm_lane=$!

# Without a hardware adapter the webgpu steps would time Mesa's software one, or fail: parity and the check's bench
# say so in a second (exit 4); bench train has no such guard and is skipped.
hardware=0
grep -q '"software":false' "$OUT/doctor.json" 2>/dev/null && hardware=1

step parity-webgpu 90 node "${check[@]}" parity --backend webgpu --require-hardware
step bench-webgpu 120 node "${check[@]}" bench --backend webgpu --require-hardware "${core[@]}"
if [ "$hardware" = 1 ]; then
  step train-webgpu 150 node "${lethe[@]}" bench train --json --backend webgpu
else
  echo '{"step":"train-webgpu","rc":null,"skipped":"no hardware WebGPU adapter (see doctor.json)"}' >> "$OUT/steps.jsonl"
  log "train-webgpu: skipped, no hardware WebGPU adapter"
fi
step aggregate 90 node "${lethe[@]}" bench aggregate --json "${aggregate[@]}"

# NATS JetStream on 127.0.0.1:4222 from the carried Debian package, unless one already answers there.
nats_pid=
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  mkdir -p "$root/nats" && dpkg -x "$root"/debs/nats-server_*.deb "$root/nats"
  "$root/nats/usr/sbin/nats-server" -a 127.0.0.1 -p 4222 -js -sd "$root/nats-data" -l "$OUT/nats-server.log" &
  nats_pid=$!
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.2; done
fi
step nats 90 node "${lethe[@]}" bench nats --json "${nats[@]}"
[ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null

wait "$wasm_lane"
log "done; results:"
cat "$OUT/steps.jsonl"
for f in "$OUT"/*.json; do [ -s "$f" ] && echo "$(basename "$f" .json): $(tail -n 1 "$f")"; done
exit 0
