#!/usr/bin/env bash
# Install the Debian 12 packages seqformer needs to build and test, if any are missing.
# Runs apt-get only when something is absent (uses sudo when not root).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev liblapack-dev libcjson-dev zlib1g-dev python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "seqformer: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
