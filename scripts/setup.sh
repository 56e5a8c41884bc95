#!/usr/bin/env bash
# Installs samlens and everything its test suite needs into ./.venv (Debian/Ubuntu, Python >= 3.10);
# nothing is pip-installed into the system interpreter. PYTHON=/path/to/python3 picks the interpreter
# that creates the venv. Idempotent: once everything is there, a re-run only checks a stamp.
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

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  if ! "${PYTHON:-python3}" -m venv "$VENV"; then
    # Debian ships venv's pip bootstrap separately.
    if [ "$(id -u)" = 0 ]; then
      rm -rf "$VENV"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq python3-venv
      "${PYTHON:-python3}" -m venv "$VENV"
    else
      echo "setup: cannot create $VENV; run: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
fi
PY="$VENV/bin/python"

# Pinned: this torch/torchvision pair is known to work together on CPU (and CUDA).
TORCH=2.14.1
TORCHVISION=0.29.1
PINS="torch==$TORCH torchvision==$TORCHVISION"
# The stamp records what was installed; when neither the pins nor pyproject.toml changed and
# samlens still imports from this checkout, there is nothing to do.
STAMP="$VENV/.samlens-setup"
WANT="$PINS $(sha256sum pyproject.toml | cut -d' ' -f1) $(pwd)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
  && "$PY" -c "import samlens, importlib.metadata as m; import sys; sys.exit(
    [m.version(p).split('+')[0] for p in ('torch', 'torchvision')] != ['$TORCH', '$TORCHVISION'])" \
    2>/dev/null; then
  exit 0
fi
# shellcheck disable=SC2086  # PINS is a list of requirements
"$PY" -m pip install -q --disable-pip-version-check $PINS
# The pins also constrain the extras' dependencies, so nothing replaces this torch.
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
printf '%s\n' $PINS > "$CONSTRAINTS"
"$PY" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" -e ".[all]"
echo "$WANT" > "$STAMP"
