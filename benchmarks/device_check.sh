#!/usr/bin/env bash
# The one prepared GPU check, for a session whose task is lent a device machine.
# From the device tool (docs: /work/.library/device/README.md):
#   run  command: bash benchmarks/device_check.sh   carry: [".whl"]   timeout_s: 480
# The image has torch, numpy, safetensors, pluggy, click, rich and pytest; the two
# pure-Python packages it lacks travel as wheels in .whl (ignored by git). Fetch them here
# first, into the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl platformdirs pytest-asyncio
# It runs the CUDA tests (the CUDA-graph path: same greedy text and sampled text as the
# reference path, the device sampler), the engine and device tests, a short training run
# with automatic precision, then benchmarks/device_speed.py. Logs are written to $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
out=${OUT:-/tmp}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "could not install the carried wheels"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
rc=0
python3 -m pytest -q -p no:cacheprovider -rs tests/speed tests/test_generate.py tests/test_device.py 2>&1 \
  | tee "$out/tests.log" || rc=1
python3 -m rnnchat train corpora/tiny.txt --steps 40 --hidden 64 --device cuda --out /tmp/tiny-cuda.safetensors 2>&1 \
  | tail -5 | tee "$out/train.log" || rc=1
python3 -m rnnchat generate "To be" -m /tmp/tiny-cuda.safetensors -n 80 --stats --device cuda 2>&1 | tee -a "$out/train.log" || rc=1
timeout 300 python3 benchmarks/device_speed.py --repeats 3 2>&1 | tee "$out/device_speed.log" || rc=1
exit $rc
