#!/usr/bin/env bash
# Configure and build into build/ (Release). Extra arguments go to cmake, e.g. -DSF_NATIVE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
