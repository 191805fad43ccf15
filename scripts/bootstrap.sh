#!/usr/bin/env bash
# Idempotent setup used by `make train` / `make test`: a .venv on Python 3.12 with pirlctl installed
# editable (with its dev extra), plus Debian's libosmesa6 for headless MuJoCo. A second run only
# checks and skips. Exits non-zero with one clear line when a step cannot be done.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.pirlctl-installed"

find_python() {
  # lerobot >= 0.5 needs Python >= 3.12; the machine's default python3 may be 3.11.
  for cand in "${PIRL_PYTHON:-}" python3.12 python3.13; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  # pyenv keeps interpreters that are not on the global PATH.
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
    if [ -x "$cand" ]; then echo "$cand"; return 0; fi
  done
  return 1
}

# 1. System library for headless MuJoCo rendering.
if ! ldconfig -p 2>/dev/null | grep -q 'libOSMesa.so'; then
  echo "[setup] installing libosmesa6 (headless MuJoCo rendering)"
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq libosmesa6 >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq libosmesa6 >/dev/null; }) \
      || { echo "[setup] error: could not install libosmesa6 with apt-get; install it (sudo apt-get install libosmesa6) or set MUJOCO_GL=egl" >&2; exit 1; }
  else
    echo "[setup] warning: libosmesa6 missing and apt-get unavailable (not root?); run 'sudo apt-get install libosmesa6' or use MUJOCO_GL=egl" >&2
  fi
fi

# 2. The virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python) || { echo "[setup] error: Python >= 3.12 not found; install python3.12 or set PIRL_PYTHON=/path/to/python3.12" >&2; exit 1; }
  echo "[setup] creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi

# 3. The package, re-installed only when pyproject.toml changed.
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "[setup] installing pirlctl and its dependencies into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  touch "$STAMP"
fi
