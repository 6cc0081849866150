# llamacpp-setup.sh: sourced by the llama.cpp comparison scripts. It sets
# here, repo, work (removed on exit) and npmdir, builds lrmc into
# $work/lrmc, and installs node-llama-cpp@3.21.1 (llama.cpp prebuilt for
# the CPU) into $npmdir unless LLAMACPP_DIR already holds it.
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
repo=$(dirname "$here")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npmdir=${LLAMACPP_DIR:-$work/npm}

echo "building lrmc" >&2
(cd "$repo" && go build -o "$work/lrmc" ./cmd/lrmc)

if [ ! -d "$npmdir/node_modules/node-llama-cpp" ]; then
	echo "installing node-llama-cpp@3.21.1 into $npmdir" >&2
	mkdir -p "$npmdir"
	(cd "$npmdir" && npm i -E --ignore-scripts --no-audit --no-fund node-llama-cpp@3.21.1 >&2)
fi
