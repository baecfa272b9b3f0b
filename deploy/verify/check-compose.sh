#!/usr/bin/env bash
# Check 2 (run by run.sh): deploy/compose.yaml under podman-compose (three nodes behind nginx,
# PostgreSQL in a container), with compose.verify.yaml swapping MinIO for a relay to the host's
# RGW. Pushes and pulls through nginx's published port, then checks that several nodes served.
set -euo pipefail
here=${here:?run by run.sh}
source "$here/lib.sh"
dir="$WORK/compose" net=stowage_default project=stowage
mkdir -p "$dir"
# Test secrets, in the form the compose file asks for. podman-compose 1.0.3 reads .env only
# next to the compose file (deploy/.env, where a user's real secrets go), so this one is passed
# as environment. Its output echoes every podman command with its -e values: kept in $dir only.
cat >"$dir/.env" <<ENV
POSTGRES_PASSWORD=$POSTGRES_PASSWORD
S3_ACCESS_KEY=$S3_ACCESS_KEY
S3_SECRET_KEY=$S3_SECRET_KEY
STOWAGE_ADMIN_PASSWORD=$STOWAGE_ADMIN_PASSWORD
STOWAGE_PORT=127.0.0.1:$PORT_LB
S3_UPSTREAM=host.containers.internal:$PORT_RGW
ENV
mapfile -t env_lines <"$dir/.env"
compose=(env "${env_lines[@]}" podman-compose -p "$project" -f "$here/../compose.yaml" -f "$here/compose.verify.yaml")
cat >"$dir/cleanup" <<CLEANUP
${compose[*]} down -v >"$dir/down.log" 2>&1
podman network rm -f $net >/dev/null 2>&1
true
CLEANUP

# The project's network, created beforehand with a known gateway for the relay to the host.
podman network create --subnet "$COMPOSE_NET.0/24" "$net" >/dev/null
relay compose-rgw "$COMPOSE_NET.1" "$PORT_RGW"

log "podman-compose up"
"${compose[@]}" up -d >"$dir/up.log" 2>&1 || { grep -i -E 'error|warn' "$dir/up.log" | grep -v -- ' -e ' >&2; die "podman-compose up"; }
podman ps --filter "label=io.podman.compose.project=$project" --format '{{.Names}} {{.Status}}' >&2
mapfile -t nodes < <(podman ps --filter "label=com.docker.compose.service=stowage" --filter "label=io.podman.compose.project=$project" --format '{{.Names}}')
log "nodes: ${nodes[*]}"
[ ${#nodes[@]} -eq 3 ] || die "expected 3 stowage nodes (deploy.replicas), found ${#nodes[@]}"

# Every node healthy by the compose file's own healthchecks (podman runs them on systemd timers,
# which this machine lacks: run them by hand), PostgreSQL too; then nginx answers.
for c in "${project}_postgres_1" "${nodes[@]}"; do
  deadline=$((SECONDS + 180))
  until podman healthcheck run "$c" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { show_logs "$c"; die "healthcheck of $c"; }
    sleep 2
  done
done
log "healthchecks of PostgreSQL and the nodes pass"
lb="127.0.0.1:$PORT_LB"
wait_http "http://$lb/readyz" 30 || { show_logs "${nodes[@]}" "${project}_lb_1"; die "/readyz through nginx"; }
log "nginx on $lb: /readyz answers 200"

make_test_image "$dir/image"
push_pull "$lb" "$lb" verify/compose "$dir/image"
served=0
for node in "${nodes[@]}"; do
  n=$(podman logs "$node" 2>&1 | grep -c '"path":"/v2/verify/' || true)
  log "$node logged $n registry requests"
  [ "$n" -gt 0 ] && served=$((served + 1))
done
[ "$served" -gt 1 ] || die "nginx sent every request to one node"
log "$served of ${#nodes[@]} nodes served"

# The nodes believe nginx's X-Forwarded-For: the audit log has the client's address, not nginx's.
lb_ip=$(podman inspect "${project}_lb_1" --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}")
addresses=$(curl -sf -u "admin:$STOWAGE_ADMIN_PASSWORD" "http://$lb/api/v1/audit?page_size=50" \
  | python3 -c 'import json,sys; print(" ".join(sorted({e["address"] for e in json.load(sys.stdin)["items"]})))') \
  || die "audit log through nginx"
log "audit addresses: $addresses (nginx is $lb_ip)"
[[ " $addresses " != *" $lb_ip "* ]] || die "a node recorded nginx's address: STOWAGE_TRUSTED_PROXIES does not cover it"

# PostgreSQL stops: the nodes turn unready (503), and recover by themselves when it is back.
podman stop -t 10 "${project}_postgres_1" >/dev/null 2>&1
wait_http "http://$lb/readyz" 30 503 || die "/readyz stayed ready without PostgreSQL"
podman start "${project}_postgres_1" >/dev/null 2>&1
wait_http "http://$lb/readyz" 60 || die "the nodes did not recover after PostgreSQL came back"
log "without PostgreSQL /readyz answered 503; ready again once it was back"

# A node restarts (podman gives it a new address): nginx finds it again, and nothing hangs.
node_ip() { podman inspect "$1" --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}"; }
old_ip=$(node_ip "${nodes[1]}")
podman restart -t 35 "${nodes[1]}" >/dev/null 2>&1
log "restarted ${nodes[1]}: $old_ip -> $(node_ip "${nodes[1]}")"
wait_http "http://$lb/readyz" 60 || die "/readyz after a node restart"
sleep 12   # nginx's resolver cache (valid=10s)
before=$(podman logs "${nodes[1]}" 2>&1 | grep -c '"path":"/v2/' || true)
for _ in $(seq 1 9); do
  code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "http://$lb/v2/") || true
  [ "$code" = 401 ] || die "GET /v2/ through nginx after a node restart: ${code:-no answer}"
done
after=$(podman logs "${nodes[1]}" 2>&1 | grep -c '"path":"/v2/' || true)
[ "$after" -gt "$before" ] || die "nginx does not reach ${nodes[1]} after its restart"
push_pull "$lb" "$lb" verify/compose-after-restart "$dir/image"
log "compose check passed"
