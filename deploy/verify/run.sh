#!/usr/bin/env bash
# Runs the deployment examples for real on one machine (see docs/deployment.md, "Verifying the
# examples"): builds the stand-in base images and deploy/Dockerfile, then
#   1. plays deploy/kubernetes/*.yaml with `podman kube play` (two replicas) against PostgreSQL
#      and Ceph RGW on the host, and
#   2. runs deploy/compose.yaml with podman-compose (3 nodes, nginx, PostgreSQL; MinIO replaced
#      by a relay to the host's RGW),
# pushing and pulling a test image with skopeo through each. Cleans up all it started, also on
# failure. Needs root, podman, buildah, skopeo, podman-compose, debootstrap, python3, node with
# the repository's node_modules, and /work/shared/services/ceph-rgw.sh (or CEPH_RGW_SH). Not part
# of the test suite.
#   deploy/verify/run.sh [kube|compose]...   (default: both)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export WORK=${STOWAGE_VERIFY_WORK:-/tmp/stowage-verify}
export PORT_LB=${STOWAGE_VERIFY_PORT_BASE:-7680} PORT_RGW=$((${STOWAGE_VERIFY_PORT_BASE:-7680} + 1)) PORT_PG=$((${STOWAGE_VERIFY_PORT_BASE:-7680} + 2))
export KUBE_NET=10.89.76 COMPOSE_NET=10.89.77   # /24 subnets of the two podman networks
ceph_rgw=${CEPH_RGW_SH:-/work/shared/services/ceph-rgw.sh}
pg_bin=/usr/lib/postgresql/15/bin
source "$here/lib.sh"
checks=("$@"); [ ${#checks[@]} -gt 0 ] || checks=(kube compose)

cleanup() {
  local rc=$?
  set +e
  if [ -n "${STOWAGE_VERIFY_HOLD:-}" ]; then  # keep everything running to look around
    touch "$WORK/hold"; log "holding (exit $rc): rm $WORK/hold to clean up"
    while [ -e "$WORK/hold" ]; do sleep 2; done
  fi
  log "cleaning up"
  [ -f "$WORK/kube/cleanup" ] && bash "$WORK/kube/cleanup"
  [ -f "$WORK/compose/cleanup" ] && bash "$WORK/compose/cleanup"
  for f in "$WORK"/relay-*.pid; do [ -f "$f" ] && kill "$(<"$f")" 2>/dev/null; done
  [ -f "$WORK/pg/data/postmaster.pid" ] && runuser -u postgres -- "$pg_bin/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null
  [ -d "$WORK/rgw" ] && bash "$ceph_rgw" stop "$WORK/rgw" --purge 2>/dev/null
  # The image of this tree goes (a later podman-compose up would take it for current); the
  # stand-ins and buildah's layer cache stay.
  podman rmi registry.example.internal/stowage:0.1.0 localhost/stowage:latest >/dev/null 2>&1
  rm -rf "$WORK"
  if [ $rc -eq 0 ]; then log "all checks passed"; else log "FAILED (exit $rc)"; fi
}

[ "$(id -u)" -eq 0 ] || die "run as root (rootful podman, PostgreSQL as the postgres user)"
[ ! -e "$WORK" ] || die "$WORK exists: a previous run is still going or did not clean up"
mkdir -p "$WORK" && chmod 755 "$WORK"
trap cleanup EXIT
trap 'exit 130' INT TERM

# podman/buildah settings for this run only: limits at or below the host's hard limits (in a
# sandbox without CAP_SYS_RESOURCE the defaults cannot be applied), and runc where crun refuses
# hybrid cgroups.
runtime=crun; [ -d /sys/fs/cgroup/unified ] && runtime=runc
cat >"$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=8192:8192"]
[engine]
runtime = "$runtime"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"

bash "$here/standins.sh" "${STOWAGE_VERIFY_CACHE:-/var/tmp/stowage-verify-standins}"
log "building deploy/Dockerfile"
buildah bud --quiet -f "$repo/deploy/Dockerfile" -t localhost/stowage:latest "$repo" >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; die "image build"; }

# Host services on 127.0.0.1: Ceph RGW (S3) and PostgreSQL, with fresh test credentials.
secret() { head -c "$1" /dev/urandom | base64 | tr '+/' 'xy'; }
STOWAGE_ADMIN_PASSWORD=$(secret 18) POSTGRES_PASSWORD=$(secret 18) S3_SECRET_KEY=$(secret 24)
S3_ACCESS_KEY=VERIFY$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
export STOWAGE_ADMIN_PASSWORD POSTGRES_PASSWORD S3_ACCESS_KEY S3_SECRET_KEY
log "starting Ceph RGW on 127.0.0.1:$PORT_RGW"
mkdir -p "$WORK/rgw"
CEPH_RGW_ACCESS_KEY=$S3_ACCESS_KEY CEPH_RGW_SECRET_KEY=$S3_SECRET_KEY CEPH_MEMSTORE_MB=2048 \
  bash "$ceph_rgw" start "$WORK/rgw" "$PORT_RGW" >/dev/null
log "starting PostgreSQL on 127.0.0.1:$PORT_PG"
mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
runuser -u postgres -- "$pg_bin/initdb" -D "$WORK/pg/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
  -o "-p $PORT_PG -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
runuser -u postgres -- "$pg_bin/psql" -qX -h "$WORK/pg" -p "$PORT_PG" -U postgres -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE stowage LOGIN PASSWORD '$POSTGRES_PASSWORD';
CREATE DATABASE stowage OWNER stowage;
SQL

# relay NAME GATEWAY PORT: expose host 127.0.0.1:PORT on a podman network's gateway address.
relay() {
  python3 "$here/relay.py" "$2:$3" "127.0.0.1:$3" >"$WORK/relay-$1.log" 2>&1 &
  echo $! >"$WORK/relay-$1.pid"
}
export -f relay
export here

for check in "${checks[@]}"; do
  case $check in
    kube|compose) bash "$here/check-$check.sh" ;;
    *) die "unknown check: $check" ;;
  esac
done
