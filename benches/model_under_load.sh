#!/usr/bin/env bash
# Runs the seeded model test (tests/zmq_front_ends_model.rs, on every host loop) one seed at a time for SECONDS with two
# CPU hogs, counting watchdog hangs: how issue 13's "hung once in ~35 runs under load" was
# settled. usage: benches/model_under_load.sh SECONDS
set -u
secs=${1:-300}
bin=$(cargo test --release --features front-ends --test zmq_front_ends_model --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)
end=$(( $(date +%s) + secs ))
yes > /dev/null & h1=$!
yes > /dev/null & h2=$!
trap 'kill $h1 $h2 2>/dev/null' EXIT
n=0; hangs=0; fails=0
while [ "$(date +%s)" -lt "$end" ]; do
  seed=$(( (n * 7919 + 1) & 0x7fffffffffffffff ))
  out=$(EVNET_SEED=$seed timeout 100 "$bin" --test-threads 1 2>&1); rc=$?
  n=$((n + 1))
  if grep -q watchdog <<<"$out"; then hangs=$((hangs + 1)); echo "hang: EVNET_SEED=$seed";
  elif [ $rc -ne 0 ]; then fails=$((fails + 1)); echo "fail: EVNET_SEED=$seed"; fi
done
echo "$n runs, $hangs hangs, $fails failures"
