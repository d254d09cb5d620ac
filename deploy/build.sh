#!/usr/bin/env bash
# Builds the static depot binary and the depot image in one step.
#
#   deploy/build.sh [tag]        tag defaults to $DEPOT_IMAGE, else depot:latest
#
# The binary is built with CGO_ENABLED=0, so the image needs nothing but
# itself (FROM scratch): no base image is pulled. Set DEPOT_BINARY to an
# already built static binary to skip the go build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-${DEPOT_IMAGE:-depot:latest}}
certs=${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

if [ -n "${DEPOT_BINARY:-}" ]; then
	cp "$DEPOT_BINARY" "$ctx/depot"
else
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/depot" ./cmd/depot)
fi
cp "$certs" "$ctx/ca-certificates.crt"
printf 'root:x:0:0:root:/:/sbin/nologin\ndepot:x:65532:65532:depot:/data:/sbin/nologin\n' >"$ctx/passwd"
printf 'root:x:0:\ndepot:x:65532:\n' >"$ctx/group"
mkdir "$ctx/data"
cp "$root/deploy/Dockerfile" "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx" >/dev/null
echo "built $tag"
