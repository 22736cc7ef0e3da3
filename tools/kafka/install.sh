#!/usr/bin/env bash
# Resolve the Apache Kafka jars (broker, controller, tools, MirrorMaker 2, a log4j binding) from
# Maven Central and copy them to .cache/kafka/libs (git-ignored), where kafka.sh and the tests
# find them. Idempotent: a stamp holding the pom's checksum makes a second run instant.
#
#   bash tools/kafka/install.sh            # install or confirm the cache
#   KAFKA_LIBS=/elsewhere bash tools/kafka/install.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libs=${KAFKA_LIBS:-$root/.cache/kafka/libs}
stamp=$libs/.installed
want=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -n "$(ls "$libs"/kafka_2.13-*.jar 2>/dev/null)" ]; then
  echo "kafka jars: cached in $libs ($(ls "$libs"/*.jar | wc -l) jars)"
  exit 0
fi

for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "kafka jars: '$tool' is not on PATH; install Java 17+ and Maven (Debian: apt-get install openjdk-17-jre-headless maven)" >&2
    exit 1
  fi
done

# Copy into a fresh directory and swap it in, so an interrupted download never leaves a
# half-filled cache that the stamp would vouch for.
tmp=$libs.tmp.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -ntp -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp"
mkdir -p "$(dirname "$libs")"
rm -rf "$libs"
mv "$tmp" "$libs"
echo "$want" >"$stamp"
echo "kafka jars: installed $(ls "$libs"/*.jar | wc -l) jars in $libs"
