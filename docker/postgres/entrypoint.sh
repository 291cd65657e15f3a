#!/bin/sh
# Initialises the cluster on first start (password from POSTGRES_PASSWORD, listening on all
# addresses, pgml_compat's models directory set), then runs PostgreSQL as user postgres.
set -eu

if [ "${1:-postgres}" != "postgres" ]; then
  exec "$@"
fi
[ "$#" -gt 0 ] && shift

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "pgml-kit-postgres: set POSTGRES_PASSWORD (the password of user postgres) to initialise the database" >&2
    exit 1
  fi
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  runuser -u postgres -- initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
# Your models (a volume), then the ones pgml-kit ships (pgml-kit/wordnet-static-128).
pgml_compat.models_dir = '/var/lib/pgml-kit/models:/usr/share/pgml-kit/models'
CONF
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "pgml-kit-postgres: initialised $PGDATA (PostgreSQL $PG_MAJOR, pgvector, PL/Python, pgml_compat available)" >&2
fi

# setpriv executes postgres in this process (PID 1): `docker stop`'s SIGINT reaches it and it shuts
# down fast and clean. runuser would stay as PID 1 without passing the signal on, and Docker would
# kill PostgreSQL 10 s later (crash recovery at the next start).
exec setpriv --reuid=postgres --regid=postgres --init-groups -- postgres -D "$PGDATA" "$@"
