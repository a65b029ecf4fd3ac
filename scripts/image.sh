#!/usr/bin/env bash
# `make image`: builds the Toolplane image from ./Dockerfile and prints its name.
#
#   scripts/image.sh [name:tag]          default toolplane:dev
#
# With docker it is a plain `docker build`. Without (as on these machines) it uses buildah:
# `buildah bud --isolation chroot --layers`, with cache mounts for the pnpm store and turbo. Where the
# base image cannot be pulled (no Docker Hub), it builds on a stand-in assembled locally
# (scripts/image-base-standin.sh) and says so.
#
# Environment: NODE_IMAGE (the base; default the Dockerfile's), IMAGE_CONTEXT (the build context;
# default the repository root), IMAGE_BUILDER (docker | buildah; default docker when it runs).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$TP_ROOT"

log() { printf '\033[36m[image]\033[0m %s\n' "$*" >&2; }

tag="${1:-toolplane:dev}"
context="${IMAGE_CONTEXT:-$TP_ROOT}"
revision="$(git -C "$TP_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
version="$(node -p 'require("./services/planner/package.json").version')-$revision"
args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision"
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" -f "$context/Dockerfile")
[ -n "${NODE_IMAGE:-}" ] && args+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
# A TLS-inspecting proxy is trusted through the system bundle (scripts/env.sh); the build needs it too.
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] && args+=(--secret "id=npm_ca,src=$NODE_EXTRA_CA_CERTS")

builder="${IMAGE_BUILDER:-}"
if [ -z "$builder" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then builder=docker; else builder=buildah; fi
fi

case "$builder" in
  docker)
    log "docker build -t $tag"
    DOCKER_BUILDKIT=1 docker build "${args[@]}" -t "$tag" "$context" >&2
    ;;
  buildah)
    command -v buildah >/dev/null || { echo "neither a docker engine nor buildah here (make bootstrap installs buildah)" >&2; exit 1; }
    if [ -z "${NODE_IMAGE:-}" ]; then
      default_base="$(sed -n 's/^ARG NODE_IMAGE=//p' "$context/Dockerfile")"
      if ! buildah inspect --type image "$default_base" >/dev/null 2>&1 && ! buildah pull --quiet "$default_base" >/dev/null 2>&1; then
        standin="$("$TP_ROOT/scripts/image-base-standin.sh")"
        log "$default_base cannot be pulled here; building on the local stand-in $standin"
        args+=(--build-arg "NODE_IMAGE=$standin")
      fi
    fi
    previous="$(buildah inspect --type image --format '{{.FromImageID}}' "$tag" 2>/dev/null || true)"
    log "buildah bud -t $tag"
    # --format docker keeps HEALTHCHECK (the OCI image config has no field for it). No --layers:
    # every step after `COPY . .` runs on any change anyway, and committing each one costs more than
    # the two steps before it; the pnpm store and turbo's cache are cache mounts, kept across builds.
    buildah bud --isolation chroot --format docker --pull=false "${args[@]}" -t "$tag" "$context" >&2
    # The image the tag named before is now unnamed: drop it, and turbo outputs unused for a week.
    current="$(buildah inspect --type image --format '{{.FromImageID}}' "$tag")"
    if [ -n "$previous" ] && [ "$previous" != "$current" ]; then buildah rmi "$previous" >/dev/null 2>&1 || true; fi
    find /var/tmp/buildah-cache/toolplane-turbo -type f -mtime +7 -delete 2>/dev/null || true
    ;;
  *) echo "IMAGE_BUILDER must be docker or buildah, not $builder" >&2; exit 1 ;;
esac
echo "$tag"
