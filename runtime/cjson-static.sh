#!/bin/sh
# runtime/cjson-static.sh OUT: builds OUT/libcjson.a for berth-shim, which
# is linked statically while Debian ships cJSON only as a shared library.
# The source is Debian's own package at exactly the version of the
# libcjson-dev installed here (Debian's security patches applied, the
# header checked identical to the installed one), fetched by apt, which
# verifies it against the archive's signed index.  apt runs on lists,
# caches and sources of its own under OUT (the deb-src twins of this
# host's deb entries), so the host's apt state is not touched.
set -eu
mkdir -p "$1"
out=$(cd "$1" && pwd)
src=$out/src
ver=$(dpkg-query -W -f='${source:Version}' libcjson-dev)
rm -rf "$src"
mkdir -p "$src/parts" "$src/lists/partial" "$src/cache/archives/partial"
: >"$src/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] && sed -n 's/^deb[[:space:]]/deb-src /p' "$f" >>"$src/sources.list"
done
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && sed 's/^Types:.*/Types: deb-src/' "$f" >"$src/parts/${f##*/}"
done
apt() {
	apt-get -qq -o Dir::Etc::SourceList="$src/sources.list" \
		-o Dir::Etc::SourceParts="$src/parts" -o Dir::State::Lists="$src/lists" \
		-o Dir::Cache="$src/cache" -o APT::Sandbox::User=root "$@"
}
if ! apt update || ! (cd "$src" && apt source "cjson=$ver" >/dev/null); then
	echo "cjson-static.sh: cannot fetch Debian's source package cjson $ver" \
		"(berth-shim links it statically; the Debian archive must be reachable)" >&2
	exit 1
fi
dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'cjson-*')
if ! cmp -s "$dir/cJSON.h" /usr/include/cjson/cJSON.h; then
	echo "cjson-static.sh: $dir/cJSON.h differs from /usr/include/cjson/cJSON.h" \
		"(libcjson-dev $ver)" >&2
	exit 1
fi
${CC:-cc} -O2 -g -fPIE -c "$dir/cJSON.c" -o "$out/cJSON.o"
rm -f "$out/libcjson.a"
ar rcs "$out/libcjson.a" "$out/cJSON.o"
