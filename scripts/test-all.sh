#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs every test: C unit tests and the end-to-end suite against the normal
# build, then both again against the ASan+UBSan build. Expects scripts/setup.sh --asan.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
PMD=drivers/net/vhost/librte_net_vhu.so

echo "== unit tests =="
meson test -C build --print-errorlogs
echo "== end-to-end tests =="
VHU_PMD="$(scripts/stage-pmd.sh build/$PMD)" $PY -m pytest -v tests/ "$@"

echo "== unit tests, ASan+UBSan =="
meson test -C build-asan --print-errorlogs
echo "== end-to-end tests, ASan+UBSan =="
VHU_ASAN=1 VHU_PMD="$(scripts/stage-pmd.sh build-asan/$PMD)" $PY -m pytest -v tests/ "$@"
