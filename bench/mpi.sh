#!/usr/bin/env bash
# The measurements of BENCHMARKS.md, "Past one machine": on this machine, Fashion-MNIST training
# images/s with 1 process x 2 threads, 1 x 1 and 2 processes x 1 thread (mpirun); the all-reduce
# of each built-in model's gradient between 2 processes, on loopback TCP and on shared memory;
# and the share of a 2-process training step spent in MPI's collectives.
#
# Needs a build with the feature mpi (cargo build --release --features mpi), Open MPI's mpirun
# and Fashion-MNIST (apt-get install dataset-fashion-mnist). Run it with nothing else running:
#
#     bench/mpi.sh [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
descent=${DESCENT:-target/release/descent}
repeats=${1:-3}
# Open MPI refuses root without these (containers, CI).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun -n 2 --bind-to none -x RAYON_NUM_THREADS=1)
tcp=(--mca btl self,tcp --mca btl_tcp_if_include lo)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "== Fashion-MNIST, one epoch of 60,000 images, training images/s (median of $repeats)"
for threads in 2 1; do
  echo "-- 1 process x $threads thread(s)"
  RAYON_NUM_THREADS=$threads "$descent" bench --workloads fashion --devices flex --repeats "$repeats" | tail -n 1
done
echo "-- 2 processes x 1 thread (mpirun, shared memory)"
"${mpirun[@]}" "$descent" bench --workloads fashion --devices flex --repeats "$repeats" | tail -n 1
echo "-- 2 processes x 1 thread (mpirun, loopback TCP)"
"${mpirun[@]}" "${tcp[@]}" "$descent" bench --workloads fashion --devices flex --repeats "$repeats" | tail -n 1

echo "== the all-reduce of one step's gradient between 2 processes, ms (median of 5 means of 50)"
echo "-- loopback TCP"
"${mpirun[@]}" "${tcp[@]}" "$descent" bench --workloads allreduce --devices flex --repeats 5 | tail -n +3
echo "-- shared memory"
"${mpirun[@]}" "$descent" bench --workloads allreduce --devices flex --repeats 5 | tail -n +3

echo "== the share of a step in MPI's collectives: one Fashion-MNIST epoch, 2 processes, loopback TCP"
"${mpirun[@]}" "${tcp[@]}" "$descent" cnn --data fashion-mnist --epochs 1 --out "$scratch/run" -q --json \
  | tail -n 1 | python3 -c "
import json, sys
s = json.loads(sys.stdin.read())
share = s['communication_seconds'] / s['seconds']
per_step = 1e3 * s['communication_seconds'] / s['steps']
print(f\"steps {s['steps']}, training {s['seconds']:.2f} s, in collectives {s['communication_seconds']:.2f} s ({100 * share:.1f}%), {per_step:.2f} ms per step\")"
