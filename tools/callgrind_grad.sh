#!/bin/bash
# Instructions per warm extract_gradient on the default simulator (surrogate, 7 electrodes,
# T = 0.1 s): callgrind runs the same script with N calls and with 0 calls (both after 5 warm-up
# calls; one BLAS thread, a fixed hash seed so the two runs' start-ups match) and prints the
# difference / N. Needs valgrind; ~3 min per run, both runs at once.
#     tools/callgrind_grad.sh [N=20]
set -e
cd "$(dirname "$0")/.."
N=${1:-20}
PY=$(python -c "import sys; print(sys.executable)")   # not a pyenv shim: callgrind must see python itself
OUT=$(mktemp -d)
cat > "$OUT/run.py" <<'PYEOF'
import os, sys
sys.path.insert(0, os.getcwd())
import numpy as np
from hge_embedded.bench import _BIAS
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.gradient import extract_gradient
dev, b = SimulatedDNPU(seed=0, model="surrogate"), np.array(_BIAS)
for _ in range(5 + int(sys.argv[1])):
    extract_gradient(dev, b)
PYEOF
for n in 0 "$N"; do
    PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$n" \
        "$PY" "$OUT/run.py" "$n" >/dev/null 2>&1 &
done
wait
total() { callgrind_annotate "$1" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
python -c "print('extract_gradient: %.3f M instructions per call (callgrind, %d calls minus 0)' % ((int('$(total "$OUT/cg.$N")') - int('$(total "$OUT/cg.0")')) / $N / 1e6, $N))"
echo "profiles: $OUT/cg.0 $OUT/cg.$N (callgrind_annotate --inclusive=yes)"
