#!/usr/bin/env bash
# Runs every depot test on a fresh machine: installs what the tests need
# when it is missing, checks formatting and vet, then runs go test.
# Usage: scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# Debian packages the tests drive for real.
command -v aws >/dev/null 2>&1 || need_apt+=(awscli)
if ((${#need_apt[@]})); then
	echo "installing: ${need_apt[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq || true
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" ||
		echo "warning: could not install ${need_apt[*]}; tests that need them skip (or fail under CI)"
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt wants changes in:"; echo "$unformatted"; exit 1
fi
go vet ./...

# The race detector where concurrency is the point; the rest without it, to
# keep the run short on two cores.
race_pkgs=(./client/... ./nameserver/... ./internal/... ./erasure/...)
go test -race -count=1 -timeout 15m "$@" "${race_pkgs[@]}"
go test -count=1 -timeout 20m "$@" $(go list ./... | grep -v -e /client -e /nameserver -e /internal -e /erasure)
