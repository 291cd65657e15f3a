#!/usr/bin/env bash
# Every test tier, on every Node version we support, on a fresh Debian machine (root or sudo):
#   1. in the background, a Docker engine, the base image for docker/postgres
#      (scripts/docker-engine.sh) and the docker/postgres image itself — mostly downloads, so they
#      overlap with steps 2 and 3 instead of adding minutes before them;
#   2. Node 24: the pure tier and the tests that lean on the runtime's own pieces — the example's
#      main job (PGlite's WASM, onnxruntime-node's native addon), the embedded database served to
#      other processes (worker threads, sockets, a killed owner), the CLI through npx, and the
#      packed package installed without devDependencies;
#   3. Node 22: the pure tier and the packed package;
#   4. Node 20 (the machine's, the oldest we support): `npm test` with every tier — pure, embedded
#      and server, the server being docker/postgres (PostgreSQL 17 + pgvector + PL/Python +
#      pgml_compat), started by the test run with testcontainers from the image built in step 1.
# Node 24 and 22 come from the npm registry (scripts/node-version.sh), into .cache/node.
# The whole suite on 24 as well took 310 s more for no test that could fail there alone.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE24=24.21.0
NODE22=22.23.3
mkdir -p .cache
unset PGML_KIT_TEST_DATABASE_URL

prep_log=.cache/server-prep.log
(
  set -euo pipefail
  engine=$(bash scripts/docker-engine.sh | tail -n 1)
  echo "$engine" >.cache/docker-host
  # The legacy builder, as testcontainers' build uses: its run of the same Dockerfile is then a cache hit.
  DOCKER_HOST="${engine#DOCKER_HOST=}" DOCKER_BUILDKIT=0 /usr/bin/docker build -q \
    -f docker/postgres/Dockerfile -t pgml-kit/postgres:17 . >/dev/null
  echo "[test-full] docker engine and pgml-kit/postgres:17 ready" >&2
) >"$prep_log" 2>&1 &
prep=$!
# Whatever ends this script, the background preparation ends with it.
trap 'kill "$prep" 2>/dev/null || true' EXIT

run_on() {
  local version="$1"; shift
  local node
  node=$(bash scripts/node-version.sh "$version" | tail -n 1)
  echo "== Node $("$node" --version): $*" >&2
  # The CLI tests start `node` (and npx) from PATH: this version's.
  PATH="$(dirname "$node"):$PATH" PGML_KIT_TEST_SERVER=skip "$node" node_modules/vitest/vitest.mjs run "$@"
}
# dist/ for the CLI and package tests.
npm run build
run_on "$NODE24" test/unit test/integration/example.test.ts test/integration/embedded-server.test.ts \
  test/integration/cli.test.ts test/integration/package.test.ts
run_on "$NODE22" test/unit test/integration/package.test.ts

if ! wait "$prep"; then
  cat "$prep_log" >&2
  echo "[test-full] the Docker engine or the docker/postgres image could not be prepared (above)" >&2
  exit 1
fi
cat "$prep_log" >&2
engine=$(cat .cache/docker-host)
export DOCKER_HOST="${engine#DOCKER_HOST=}"

testcontainers() { /usr/bin/docker ps -aq --no-trunc --filter label=org.testcontainers=true | sort; }
# Containers another run on this engine left (one killed half-way) are not this run's doing.
before=$(testcontainers)
echo "== Node $(node --version): all tiers" >&2
npm test
# The run removes its server container whatever the tests did; a leftover of this run is a bug.
left=$(comm -13 <(echo "$before") <(testcontainers))
if [ -n "$left" ]; then
  echo "the test run left containers behind:" >&2
  /usr/bin/docker ps -a --filter label=org.testcontainers=true >&2
  exit 1
fi
