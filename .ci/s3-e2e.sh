#!/usr/bin/env bash
# End-to-end check of the S3 shared cache against the real S3-compatible
# server that .ci/s3-up.sh starts (issue 14, item 4): two machines' worth of
# local caches share results through s3://BUCKET/PREFIX.
#
#   A. a fresh local cache applies recipes/stories260k-depth.cue with
#      --remote-cache s3://BUCKET/PREFIX (a prefix of its own): it runs the ops
#      and writes each result back to the bucket;
#   B. another fresh local cache applies the same recipe with the same remote:
#      it must run nothing ("Nothing to run": every result is read through from
#      S3) and write outputs byte-identical to A's (cmp of every file, the same
#      file list).
#
# Usage: .ci/s3-e2e.sh LRMC-BINARY   (with . "$LRMC_S3_STATE/env" done)
set -euo pipefail

if [ $# -ne 1 ]; then echo "usage: $0 LRMC-BINARY" >&2; exit 2; fi
lrmc=$(realpath "$1")
cd "$(dirname "$0")/.."
: "${LRMC_S3_TEST_ENDPOINT:?is not set: run .ci/s3-up.sh and source its env file first}"

recipe=recipes/stories260k-depth.cue
out=recipes/out/stories260k-depth # the recipe's output.dir

work=$(mktemp -d "${TMPDIR:-/tmp}/lrmc-s3-e2e.XXXXXX")
cleanup() {
  # Outputs that were there before the test go back where they were.
  if [ -d "$work/out-before" ]; then rm -rf "$out"; mv "$work/out-before" "$out"; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -e "$out" ]; then mv "$out" "$work/out-before"; fi

# What lrmc reads (see cache/remote_s3.go).
export LRMC_S3_ENDPOINT="$LRMC_S3_TEST_ENDPOINT"
export AWS_ACCESS_KEY_ID="$LRMC_S3_TEST_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$LRMC_S3_TEST_SECRET_KEY"
export AWS_REGION="${AWS_REGION:-us-east-1}"
unset AWS_SESSION_TOKEN LRMC_S3_INSECURE LRMC_REMOTE_CACHE
remote="s3://$LRMC_S3_TEST_BUCKET/s3-e2e-$(date +%s)-$$"

echo "== s3-e2e: machine A (fresh local cache) applies with --remote-cache $remote"
LRMC_CACHE="$work/cache-a" "$lrmc" apply --progress=plain --remote-cache "$remote" "$recipe" >"$work/a.txt" 2>&1 ||
  { cat "$work/a.txt"; echo "s3-e2e: machine A's apply failed" >&2; exit 1; }
ran=$(sed -n 's/^Applied: \([0-9]*\) ran.*/\1/p' "$work/a.txt")
if [ -z "$ran" ] || [ "$ran" = 0 ]; then
  cat "$work/a.txt"; echo "s3-e2e: machine A ran nothing; its cache was meant to be fresh" >&2; exit 1
fi
echo "s3-e2e: machine A ran $ran ops"
mv "$out" "$work/out-a"

echo "== s3-e2e: machine B (another fresh local cache) applies with the same remote"
LRMC_CACHE="$work/cache-b" "$lrmc" apply --progress=plain --remote-cache "$remote" "$recipe" >"$work/b.txt" 2>&1 ||
  { cat "$work/b.txt"; echo "s3-e2e: machine B's apply failed" >&2; exit 1; }
grep -q "^Nothing to run" "$work/b.txt" ||
  { cat "$work/b.txt"; echo "s3-e2e: machine B ran ops; every result should have come from S3" >&2; exit 1; }
grep "^Nothing to run" "$work/b.txt"

(cd "$work/out-a" && find . -type f | sort) >"$work/files-a"
(cd "$out" && find . -type f | sort) >"$work/files-b"
if ! cmp -s "$work/files-a" "$work/files-b"; then
  diff "$work/files-a" "$work/files-b" || true
  echo "s3-e2e: machines A and B wrote different files" >&2; exit 1
fi
while read -r f; do
  cmp "$work/out-a/$f" "$out/$f" || { echo "s3-e2e: $f differs between machines A and B" >&2; exit 1; }
done <"$work/files-a"
echo "s3-e2e: machine B ran 0 ops and wrote the same $(wc -l <"$work/files-a") files as machine A, byte for byte"
