#!/bin/bash
# scenario.sh PORT WORKERS CLIENTS MODE N_PER_CLIENT [BATCH] [SIZE]
# The shared bench's load against any Gearman server on 127.0.0.1:PORT, with the PHP
# client and worker of benchmarks/php: WORKERS echo workers and CLIENTS clients, each
# client running N_PER_CLIENT jobs.  MODE is fg, batch, bg or bgbatch (see php/client.php).
# For bg and bgbatch the clients submit first, then the workers drain, and the rate is
# jobs / (submit + drain) time.  Prints one line with the total and the rate.
set -eu
here=$(dirname "$0")/php
port=$1 W=$2 C=$3 mode=$4 n=$5 batch=${6:-100} size=${7:-16}
pids=()
background=0
case $mode in bg|bgbatch) background=1 ;; esac
if [ $background = 0 ]; then
    for _ in $(seq "$W"); do php "$here/worker.php" "$port" & pids+=($!); done
    sleep 0.5
fi
t0=$(date +%s.%N)
out=$(for _ in $(seq "$C"); do php "$here/client.php" "$port" "$mode" "$n" "$batch" "$size" & done; wait)
t1=$(date +%s.%N)
done=$(echo "$out" | python3 -c 'import json,sys; print(sum(json.loads(l)["done"] for l in sys.stdin))')
if [ $background = 1 ]; then
    per=$(( (done + W - 1) / W ))
    for _ in $(seq "$W"); do php "$here/worker.php" "$port" "$per" & pids+=($!); done
    wait "${pids[@]}"
    t2=$(date +%s.%N)
    python3 -c "print('$mode total=%d submit=%.2fs drain=%.2fs rate=%.0f/s' % ($done, $t1-$t0, $t2-$t1, $done/($t2-$t0)))"
else
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    python3 -c "print('$mode total=%d wall=%.2fs rate=%.0f/s' % ($done, $t1-$t0, $done/($t1-$t0)))"
fi
