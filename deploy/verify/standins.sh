#!/usr/bin/env bash
# standins.sh WORK — build the stand-ins for the images the examples use, which cannot be pulled
# here (no container registry is reachable): a debootstrap'd Debian bookworm imported as
# localhost/stowage-verify/debian:bookworm, and on it node:20-bookworm-slim (the host's Node 20),
# nginx:1.27, postgres:15 (Debian's packages) and an S3 relay standing in for MinIO.
# Images that exist are kept (STOWAGE_VERIFY_REBUILD=1 rebuilds them). Needs root, debootstrap,
# buildah, podman and deb.debian.org.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: standins.sh WORK}
mkdir -p "$work"
log() { echo "standins: $*" >&2; }
have() { [ "${STOWAGE_VERIFY_REBUILD:-0}" != 1 ] && podman image exists "$1"; }
# Images a rebuild replaces, removed at the end (newest first: the old base goes last).
replaced=()
note_old() { local id; id=$(podman image inspect --format '{{.Id}}' "$1" 2>/dev/null) && replaced=("$id" "${replaced[@]}") || true; }

base=localhost/stowage-verify/debian:bookworm
if ! have "$base"; then
  rootfs="$work/rootfs"
  rm -rf "$rootfs"
  log "debootstrap bookworm (minbase) into $rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  note_old "$base"
  tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
fi

# build NAME CONTAINERFILE [CONTEXT]
build() {
  if have "$1"; then log "have $1"; return; fi
  log "building $1"
  note_old "$1"
  buildah bud --quiet -f "$here/standins/$2" -t "$1" "${3:-$here/standins}" >/dev/null
}

# The official image keeps Node in /usr/local; copy the host's (the nodejs package, Node 20).
node_ctx="$work/node-context"
rm -rf "$node_ctx" && mkdir -p "$node_ctx"
node_bin=$(readlink -f "$(command -v node)")
"$node_bin" -e 'process.exit(process.versions.node.split(".")[0] === "20" ? 0 : 1)' || { log "the host's node is not Node 20"; exit 1; }
cp "$node_bin" "$node_ctx/node"
cp -a "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$node_ctx/npm"
cp -a "$(dirname "$(dirname "$node_bin")")/include/node" "$node_ctx/include"
cp "${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" "$node_ctx/ca-certificates.crt"
build docker.io/library/node:20-bookworm-slim node.Containerfile "$node_ctx"
rm -rf "$node_ctx"

build docker.io/library/nginx:1.27 nginx.Containerfile
build docker.io/library/postgres:15 postgres.Containerfile
build localhost/stowage-verify/s3-relay:latest s3-relay.Containerfile
for id in "${replaced[@]}"; do podman rmi "$id" >/dev/null 2>&1 || true; done
