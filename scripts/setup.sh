#!/usr/bin/env bash
# Set up passlm on a fresh Debian 12 machine: LLVM 19, Csmith, Chromium (a test opens the HTML
# report in it), a virtual environment in .venv with the package and its test tools. Idempotent;
# run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=""
for tool in clang-19 opt-19 llvm-extract-19 llvm-link-19 llc-19 llvm-size-19 lli-19 csmith chromium; do
  command -v "$tool" >/dev/null 2>&1 || need=1
done
if [ -n "$need" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    clang-19 llvm-19 llvm-19-runtime libllvm19 csmith libcsmith-dev chromium >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
