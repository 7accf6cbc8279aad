#!/bin/sh
# Install the Debian packages that building, testing, fuzzing and
# benchmarking dogdb_analytics need (Debian 12, PostgreSQL 15).
set -eu
pkgs="postgresql-15 postgresql-contrib postgresql-server-dev-15 libjansson-dev pkg-config
	make gcc clang libclang-rt-14-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
