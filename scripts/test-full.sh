#!/usr/bin/env bash
# Every test tier, on every Node version we support, on a fresh Debian machine (root or sudo):
#   1. a Docker engine and the base image for docker/postgres (scripts/docker-engine.sh);
#   2. Node 20 (the machine's): `npm test` with all tiers; the server tier is docker/postgres
#      (PostgreSQL 17 + pgvector + PL/Python + pgml_compat), built and started by the test run;
#   3. Node 24: the pure and embedded tiers;
#   4. Node 22: the pure tier, the CLI and the packed package (npx, PGlite, onnxruntime-node).
# Node 24 and 22 come from the npm registry (scripts/node-version.sh), into .cache/node.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE24=24.21.0
NODE22=22.23.3

engine=$(bash scripts/docker-engine.sh | tail -n 1)
export DOCKER_HOST="${engine#DOCKER_HOST=}"
unset PGML_KIT_TEST_DATABASE_URL

echo "== Node $(node --version): all tiers" >&2
npm test
# The run removes its server container whatever the tests did; a leftover is a bug.
left=$(/usr/bin/docker ps -aq --filter label=org.testcontainers=true)
if [ -n "$left" ]; then echo "the test run left containers behind: $left" >&2; exit 1; fi

run_on() {
  local version="$1"; shift
  local node
  node=$(bash scripts/node-version.sh "$version" | tail -n 1)
  echo "== Node $("$node" --version): $*" >&2
  # The CLI tests start `node` (and npx) from PATH: this version's.
  PATH="$(dirname "$node"):$PATH" PGML_KIT_TEST_SERVER=skip "$node" node_modules/vitest/vitest.mjs run "$@"
}
run_on "$NODE24"
run_on "$NODE22" test/unit test/integration/cli.test.ts test/integration/package.test.ts
