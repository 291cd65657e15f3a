# Sourced by the scripts that need Debian's archive: prints the mirror this machine already uses
# (from its apt sources), so no host name is ever written into this repository.
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "cannot find the Debian archive in /etc/apt/sources.list{,.d}" >&2; return 1; }
  printf '%s' "$uri"
}
