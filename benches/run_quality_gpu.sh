#!/usr/bin/env bash
# The GPU preset of the quality benchmark on a lent GPU machine that reaches no network:
# carry the extension built here (python/wwm_distill/_core.abi3.so, from `make install`) and
# the downloads (.cache/corpus, .cache/bert-base-chinese, from `python scripts/corpus.py`),
# then run this command back to back until it prints the table. Each call starts no new work
# after $MINUTES (default 7; the teacher checkpoints and stops), so no call passes 8 minutes;
# every call resumes where the last one stopped (keep the machine warm between calls: the
# work directory .cache/quality-gpu lives on it). Tested on CPU at the tiny preset:
#   SCALE=tiny DEVICE_CHECK=0 benches/run_quality_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ "${DEVICE_CHECK:-1}" = 1 ]; then
    python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no GPU')"
fi
exec python3 benches/bench_quality.py --scale "${SCALE:-gpu}" --minutes "${MINUTES:-7}" \
    --cache .cache --quiet --write-results "$@"
