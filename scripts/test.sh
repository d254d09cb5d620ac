#!/usr/bin/env bash
# Runs every depot test on a fresh machine: installs what the tests need
# when it is missing, checks formatting and vet, then runs go test.
# Usage: scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# Debian packages the tests drive for real.
command -v aws >/dev/null 2>&1 || need_apt+=(awscli)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
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

# First every package under the race detector in short mode (the cluster
# tests shrink their data sets), then every package in full without it, to
# keep the run short on two cores. The full pass includes the two-minute
# chaos run of internal/chaos (separate processes under a nemesis; it
# skips under -race); its long run is in the README.
go test -race -short -count=1 -timeout 20m "$@" ./...
go test -count=1 -timeout 30m "$@" ./...

# Then every fuzz target for a few seconds each (go test -fuzz takes one
# target per run): the seed corpora in testdata/fuzz/ already ran above as
# plain tests; this looks a little further. FUZZTIME=2m scripts/test.sh
# runs them longer (see SECURITY.md).
fuzz_targets=(
	".:FuzzParseFid" ".:FuzzFidString"
	"./erasure:FuzzMap" "./erasure:FuzzNewReader"
	"./client:FuzzDecodeTag"
	"./dataserver:FuzzDecodeHeader" "./dataserver:FuzzOpenShard"
	"./gateway/s3/sigv4:FuzzVerify" "./gateway/s3/sigv4:FuzzSignedRequest"
	"./gateway/s3/sigv4:FuzzChunked" "./gateway/s3/sigv4:FuzzUnsignedChunks"
	"./gateway/s3:FuzzCompleteMultipartXML" "./gateway/s3:FuzzDeleteObjectsXML" "./gateway/s3:FuzzCORSXML"
	"./internal/policy:FuzzParse" "./internal/policy:FuzzMatch"
)
# A run that ends with the fuzzing engine's own "context deadline
# exceeded" (its workers missed the end of -fuzztime on a loaded machine)
# and wrote no failing input found nothing: it is run once more. A crash
# always writes its input to testdata/fuzz/ and fails the script.
for t in "${fuzz_targets[@]}"; do
	pkg=${t%%:*} name=${t#*:}
	echo "fuzz $pkg $name"
	for try in 1 2; do
		if out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "${FUZZTIME:-3s}" "$pkg" 2>&1); then
			echo "$out"
			break
		fi
		echo "$out"
		if [ "$try" = 2 ] || ! grep -q 'context deadline exceeded' <<<"$out" || grep -q 'Failing input written' <<<"$out"; then
			exit 1
		fi
		echo "fuzz $pkg $name: the engine timed out and found nothing; once more"
	done
done
