#!/usr/bin/env bash
# The full test suite: provisions a local PostgreSQL 15 + pgvector + PL/Python (Debian packages,
# idempotent; needs root or sudo) so the server tier runs too, then runs `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
provision_output=$(bash scripts/provision-postgres.sh)
PGML_KIT_TEST_DATABASE_URL=$(printf '%s\n' "$provision_output" | sed -n 's/^PGML_KIT_TEST_DATABASE_URL=//p' | tail -n 1)
[ -n "$PGML_KIT_TEST_DATABASE_URL" ] || { echo "provision-postgres.sh printed no PGML_KIT_TEST_DATABASE_URL" >&2; exit 1; }
export PGML_KIT_TEST_DATABASE_URL
npm test
