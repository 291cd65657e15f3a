#!/usr/bin/env bash
# Provisions a real PostgreSQL 15 with pgvector, PL/Python (numpy, scikit-learn, xgboost, onnx) and
# pgml-kit's pgml_compat extension files on
# Debian 12 from Debian's own packages, and starts it on 127.0.0.1:5432. Idempotent: a second run
# only checks. Prints the test URL as its last line:
#   PGML_KIT_TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres
#
# Debian 12 has no pgvector binary package; its source package (trixie) is built here with
# OPTFLAGS="" (no -march=native, so the build is portable). The deb-src line for it lives in its
# own sources file and its own lists directory, so the machine's binary sources stay bookworm-only.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
PASSWORD="${PGML_KIT_PG_PASSWORD:-postgres}"
SRC_LIST=/etc/apt/pgml-kit-pgvector-src.list
SRC_LISTS_DIR=/var/lib/apt/pgml-kit-pgvector-lists
SUDO=""
AS_POSTGRES=(runuser -u postgres --)
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; AS_POSTGRES=(sudo -u postgres); fi

log() { printf '[provision-postgres] %s\n' "$*" >&2; }

packages=(postgresql-"${PG_MAJOR}" postgresql-server-dev-"${PG_MAJOR}" postgresql-plpython3-"${PG_MAJOR}"
  python3-numpy python3-sklearn python3-xgboost python3-onnx build-essential dpkg-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian archive this machine already uses (never a host name written here).
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { log "cannot find the Debian archive in /etc/apt/sources.list{,.d}"; exit 1; }
  printf '%s' "$uri"
}

if [ ! -f "/usr/share/postgresql/${PG_MAJOR}/extension/vector.control" ]; then
  mirror=$(debian_mirror)
  log "building pgvector from Debian's source package (trixie) via ${mirror%%/*}//…"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} trixie main" | $SUDO tee "$SRC_LIST" >/dev/null
  $SUDO mkdir -p "$SRC_LISTS_DIR/partial"
  apt_src=(-o "Dir::Etc::SourceList=${SRC_LIST}" -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::State::Lists=${SRC_LISTS_DIR}")
  $SUDO apt-get "${apt_src[@]}" update -qq
  work=$(mktemp -d)
  chmod 755 "$work" # apt drops to user _apt for downloads
  (
    cd "$work"
    apt-get "${apt_src[@]}" source --download-only pgvector >/dev/null
    tar xzf pgvector_*.orig.tar.gz
    cd "$(find . -maxdepth 1 -type d -name 'pgvector*' | head -n 1)"
    make -s OPTFLAGS="" PG_CONFIG="$PG_CONFIG" >/dev/null
    $SUDO make -s install PG_CONFIG="$PG_CONFIG" >/dev/null
  )
  rm -rf "$work"
fi

# pgml_compat (the pgml SQL API in PL/Python) from this checkout; `CREATE EXTENSION pgml_compat` per database.
here=$(cd "$(dirname "$0")/.." && pwd)
extension_dir="$("$PG_CONFIG" --sharedir)/extension"
$SUDO cp "$here/extensions/pgml_compat/pgml_compat.control" "$here"/extensions/pgml_compat/pgml_compat--*.sql "$extension_dir/"

if ! pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main"' | grep -q .; then
  log "creating cluster ${PG_MAJOR}/main"
  $SUDO pg_createcluster "$PG_MAJOR" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  log "starting cluster ${PG_MAJOR}/main"
  $SUDO pg_ctlcluster "$PG_MAJOR" main start
fi
port=$(pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1 == v && $2 == "main" { print $3 }')

for _ in $(seq 1 30); do
  "${AS_POSTGRES[@]}" psql -p "$port" -qAtc 'SELECT 1' >/dev/null 2>&1 && break
  sleep 1
done
"${AS_POSTGRES[@]}" psql -p "$port" -v ON_ERROR_STOP=1 -qAt >/dev/null <<SQL
ALTER USER postgres PASSWORD '${PASSWORD}';
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS plpython3u;
SQL
"${AS_POSTGRES[@]}" psql -p "$port" -qAt -c "DO \$\$ import numpy, sklearn, xgboost, onnx \$\$ LANGUAGE plpython3u" >/dev/null
vector_version=$("${AS_POSTGRES[@]}" psql -p "$port" -qAtc "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
log "PostgreSQL ${PG_MAJOR} on 127.0.0.1:${port}, pgvector ${vector_version}, PL/Python with numpy, scikit-learn, xgboost, onnx; pgml_compat installed"
echo "PGML_KIT_TEST_DATABASE_URL=postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres"
