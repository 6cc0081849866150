#!/usr/bin/env bash
# Starts a real S3-compatible server on loopback for the tests of the S3 remote
# cache (issue 14, item 4): SeaweedFS ("weed mini": master, volume server,
# filer and S3 gateway in one process), built from its Go module, since the
# machines reach no other source of it. gofakes3, which the unit tests also
# use, is a test double; this is a server people run in production.
#
#   bash .ci/s3-up.sh     # then: . "$LRMC_S3_STATE/env"   (default state dir below)
#
# The binary is built once per SeaweedFS version into $LRMC_S3_BIN (default
# ~/.cache/lrmc-ci/weed-VERSION) and reused while it runs. The build happens
# in a throwaway module under a temporary directory: SeaweedFS's go.mod has a
# replace directive, so `go install PKG@VERSION` refuses it, and lrmc's own
# go.mod must not depend on a server. Each start is fresh: a server this
# script started before (its pid file) is stopped, and the data directory is
# emptied. Ports are free ones on 127.0.0.1; telemetry, WebDAV, the admin UI
# and the Iceberg/Lance catalogs are off, so nothing listens beyond loopback
# and nothing is sent anywhere.
#
# On success it writes $LRMC_S3_STATE/env with LRMC_S3_TEST_ENDPOINT,
# LRMC_S3_TEST_BUCKET, LRMC_S3_TEST_ACCESS_KEY and LRMC_S3_TEST_SECRET_KEY
# (what the tests of lrmc/cache read), and prints it. On failure it prints the
# server's log. .ci/s3-down.sh stops the server.
set -euo pipefail

version="${LRMC_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
state="${LRMC_S3_STATE:-${TMPDIR:-/tmp}/lrmc-s3}"
bin="${LRMC_S3_BIN:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/lrmc-ci/weed-$version}"
bucket="${LRMC_S3_BUCKET:-lrmc-ci}"
timeout="${LRMC_S3_UP_TIMEOUT:-120}"

logs() {
  echo "---- s3-up: server log (last 60 lines)" >&2
  tail -n 60 "$state/weed.log" >&2 2>/dev/null || echo "(missing)" >&2
}
fail() { echo "s3-up: $*" >&2; logs; exit 1; }

t0=$(date +%s)
mkdir -p "$state"
bash "$(dirname "$0")/s3-down.sh" >/dev/null

# --- the binary --------------------------------------------------------------
if ! "$bin" version >/dev/null 2>&1; then
  echo "== s3-up: building SeaweedFS $version from its Go module (once per version)"
  tb=$(date +%s)
  mod=$(mktemp -d "${TMPDIR:-/tmp}/lrmc-weed-build.XXXXXX")
  # The replace directive is SeaweedFS's own (go.mod of that version): a
  # dependency's replace directives do not apply to the module requiring it.
  cat >"$mod/go.mod" <<EOF
module lrmc-ci-seaweedfs

go 1.26

require github.com/seaweedfs/seaweedfs $version

replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
EOF
  mkdir -p "$(dirname "$bin")"
  # -mod=mod: resolve the requirement graph (and go.sum) from the module
  # proxy; -s -w: no symbol tables, a smaller binary and a lighter link.
  # A machine that cannot fetch or build the server (no proxy access, a
  # module withdrawn, over LRMC_S3_BUILD_TIMEOUT) exits 3: .ci/run then skips
  # the real-server checks with a message, as issue 14 allows, instead of
  # failing lrmc for a third party's build. A server that built but does not
  # work still fails (exit 1, below).
  if ! (cd "$mod" && GOFLAGS=-mod=mod timeout "${LRMC_S3_BUILD_TIMEOUT:-2700}" \
    go build -ldflags='-s -w' -o "$bin.tmp" github.com/seaweedfs/seaweedfs/weed); then
    rm -rf "$mod" "$bin.tmp"
    echo "s3-up: building SeaweedFS $version failed (see above)" >&2
    exit 3
  fi
  rm -rf "$mod"
  mv "$bin.tmp" "$bin"
  echo "s3-up: built $bin in $(( $(date +%s) - tb ))s"
fi

# --- ports --------------------------------------------------------------------
# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=" "
free_port() { # prints a port in 20000-31999 nothing listens on and not yet handed out
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    case "$taken" in *" $p "*) continue ;; esac
    if ! listening "$p"; then taken="$taken$p "; echo "$p"; return 0; fi
  done
  fail "no free port found"
}
# Each service has an HTTP and a gRPC port (the admin server runs even without
# its UI); pick them all, none left to its fixed default, in the parent shell
# so that $taken keeps them distinct.
ports=()
for _ in $(seq 10); do p=$(free_port); taken="$taken$p "; ports+=("$p"); done
s3port=${ports[0]}

# --- configuration --------------------------------------------------------------
access="lrmc-ci-access"
secret="lrmc-ci-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
# One identity with every action: the S3 gateway then checks SigV4 signatures
# (without any identity it would serve anonymous requests).
cat >"$state/s3.json" <<EOF
{"identities": [{"name": "lrmc-ci",
  "credentials": [{"accessKey": "$access", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
chmod 600 "$state/s3.json"
rm -rf "$state/data"
mkdir -p "$state/data"

# --- start --------------------------------------------------------------------
echo "== s3-up: starting SeaweedFS S3 on 127.0.0.1:$s3port (data in $state/data)"
# setsid: its own session, so a Ctrl-C of the caller does not reach it and
# s3-down.sh stops it by its pid.
setsid "$bin" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="${ports[1]}" -master.port.grpc="${ports[2]}" \
  -volume.port="${ports[3]}" -volume.port.grpc="${ports[4]}" \
  -filer.port="${ports[5]}" -filer.port.grpc="${ports[6]}" \
  -s3.port="$s3port" -s3.port.grpc="${ports[7]}" \
  -s3.config="$state/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
  -webdav=false -admin.ui=false -master.telemetry=false \
  -admin.port="${ports[8]}" -admin.port.grpc="${ports[9]}" -admin.port.legacy=0 \
  -bucket="$bucket" \
  </dev/null >"$state/weed.log" 2>&1 &
echo $! >"$state/weed.pid"

# --- wait ---------------------------------------------------------------------
# weed mini creates -bucket's buckets once every service runs, then prints its
# welcome message and writes mini.options: after that, the S3 port answers
# and the bucket exists.
deadline=$(( $(date +%s) + timeout ))
until [ -e "$state/data/mini.options" ] && listening "$s3port"; do
  kill -0 "$(cat "$state/weed.pid")" 2>/dev/null || fail "the server exited"
  [ "$(date +%s)" -lt "$deadline" ] || fail "the server did not come up within ${timeout}s"
  sleep 0.5
done
if grep -q "create bucket $bucket\|invalid bucket name" "$state/weed.log"; then
  fail "the server did not create bucket $bucket"
fi

cat >"$state/env" <<EOF
export LRMC_S3_TEST_ENDPOINT=http://127.0.0.1:$s3port
export LRMC_S3_TEST_BUCKET=$bucket
export LRMC_S3_TEST_ACCESS_KEY=$access
export LRMC_S3_TEST_SECRET_KEY=$secret
EOF
echo "s3-up: SeaweedFS up in $(( $(date +%s) - t0 ))s; its settings, for the tests: . $state/env"
sed 's/SECRET_KEY=.*/SECRET_KEY=.../' "$state/env"
