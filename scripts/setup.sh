#!/usr/bin/env bash
# Installs everything samlens and its test suite need on a fresh machine (Debian/Ubuntu, Python >= 3.10).
# Idempotent: re-running it only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fashion-MNIST (real, 70k images) ships as a Debian package; the MNIST x Fashion dominoes use it.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq dataset-fashion-mnist
  else
    echo "setup: Fashion-MNIST missing; run: sudo apt-get install dataset-fashion-mnist" >&2
  fi
fi

PY=${PYTHON:-python3}
# Pinned: this torch/torchvision pair is known to work together on CPU (and CUDA).
"$PY" -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
"$PY" -m pip install -q --disable-pip-version-check -e ".[all]"
