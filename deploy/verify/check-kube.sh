#!/usr/bin/env bash
# Check 1 (run by run.sh): deploy/kubernetes/*.yaml under `podman kube play`, two replicas on
# PostgreSQL and RGW of the host. Only the ConfigMap and the Secret are edited (as a user does);
# the Deployment runs as written, with its image name tagged locally.
set -euo pipefail
here=${here:?run by run.sh}
source "$here/lib.sh"
k8s="$here/../kubernetes" dir="$WORK/kube" net=stowage-verify-kube
mkdir -p "$dir"
# Written first: run.sh's cleanup runs it whatever happens below.
cat >"$dir/cleanup" <<CLEANUP
for f in "$dir"/play-*.yaml; do [ -f "\$f" ] && podman kube down "\$f" >/dev/null 2>&1; done
podman secret rm stowage >/dev/null 2>&1
podman network rm -f $net >/dev/null 2>&1
true
CLEANUP

podman network create --subnet "$KUBE_NET.0/24" "$net" >/dev/null
# The pods reach the host as host.containers.internal, the network's gateway.
relay kube-pg "$KUBE_NET.1" "$PORT_PG"
relay kube-rgw "$KUBE_NET.1" "$PORT_RGW"
podman tag localhost/stowage:latest registry.example.internal/stowage:0.1.0

# The user's edits: where PostgreSQL and S3 are, and the secrets.
sed -e "s|^\(  STOWAGE_S3_ENDPOINT:\).*|\1 http://host.containers.internal:$PORT_RGW|" \
  "$k8s/configmap.yaml" >"$dir/configmap.yaml"
sed -e "s|^\(  STOWAGE_METADATA_URL:\).*|\1 postgres://stowage:$POSTGRES_PASSWORD@host.containers.internal:$PORT_PG/stowage|" \
    -e "s|^\(  AWS_ACCESS_KEY_ID:\).*|\1 $S3_ACCESS_KEY|" \
    -e "s|^\(  AWS_SECRET_ACCESS_KEY:\).*|\1 $S3_SECRET_KEY|" \
    -e "s|^\(  STOWAGE_ADMIN_PASSWORD:\).*|\1 $STOWAGE_ADMIN_PASSWORD|" \
  "$k8s/secret.yaml" >"$dir/secret.yaml"
grep -q CHANGE-ME "$dir/secret.yaml" "$dir/configmap.yaml" && die "a CHANGE-ME value was left in the Secret"

# podman 4.3 stores a played `kind: Secret` as its YAML text but reads envFrom secrets as JSON
# (name -> base64 value): create the podman secret from secret.yaml in the form it reads.
(cd "$here/../.." && node --input-type=module -e '
  import { readFileSync } from "node:fs"; import { parse } from "yaml";
  const { stringData = {}, data = {} } = parse(readFileSync(process.argv[1], "utf8"));
  const out = { ...data };
  for (const [k, v] of Object.entries(stringData)) out[k] = Buffer.from(String(v)).toString("base64");
  process.stdout.write(JSON.stringify(out));' "$dir/secret.yaml") | podman secret create stowage - >/dev/null

# podman 4.3 publishes each containerPort on the host when no hostPort is given (Kubernetes never
# does): replicas of one Deployment collide on :5000, and it opens on every interface. So each
# replica is a copy of the Deployment with replicas: 1, another name and a hostPort on
# 127.0.0.1; the check itself talks to the pods' own addresses, as a Service would.
ips=() pods=()
for r in a b; do
  port=$((PORT_LB + 10 + ${#ips[@]}))
  sed -e "0,/^  name: stowage$/s//  name: stowage-$r/" -e 's/^  replicas: .*/  replicas: 1/' \
      -e "s/containerPort: 5000 }/containerPort: 5000, hostPort: $port, hostIP: 127.0.0.1 }/" \
    "$k8s/deployment.yaml" >"$dir/deployment-$r.yaml"
  [ "$(grep -c -e "name: stowage-$r$" -e 'replicas: 1$' -e "hostPort: $port" "$dir/deployment-$r.yaml")" = 3 ] \
    || die "deployment.yaml changed shape: update the edits in check-kube.sh"
  { cat "$dir/configmap.yaml"; echo ---; cat "$dir/deployment-$r.yaml"
    echo ---; cat "$k8s/service.yaml"; } >"$dir/play-$r.yaml"
  log "podman kube play (replica $r)"
  podman kube play --network "$net" "$dir/play-$r.yaml" >"$dir/play-$r.log" 2>&1 || { cat "$dir/play-$r.log" >&2; die "kube play"; }
  grep -i -E 'warn|limit' "$dir/play-$r.log" >&2 || true
  pod=$(podman pod ps --filter "name=^stowage-$r-pod" --format '{{.Name}}')
  [ -n "$pod" ] || die "no pod for replica $r"
  pods+=("$pod")
  ips+=("$(podman pod inspect "$pod" --format '{{.InfraContainerID}}' | xargs podman inspect --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}")")
done
log "pod addresses: ${ips[*]}"
for ip in "${ips[@]}"; do
  wait_http "http://$ip:5000/healthz" 120 || die "/healthz of $ip"
  wait_http "http://$ip:5000/readyz" 120 || die "/readyz of $ip"
  log "$ip: /healthz and /readyz answer 200"
done
podman ps --filter "pod=${pods[0]}" --filter "pod=${pods[1]}" --format '{{.Names}} {{.Status}}' >&2

# Readiness follows the database: cut the pods' way to PostgreSQL, then restore it. First every
# worker must have started (/readyz answers as soon as one does).
for pod in "${pods[@]}"; do
  for _ in $(seq 60); do podman logs "$pod-stowage" 2>&1 | grep -q '"msg":"stowage listening"' && break; sleep 1; done
done
kill "$(<"$WORK/relay-kube-pg.pid")"
for ip in "${ips[@]}"; do wait_http "http://$ip:5000/readyz" 30 503 || die "/readyz of $ip stayed 200 without PostgreSQL"; done
for ip in "${ips[@]}"; do wait_http "http://$ip:5000/healthz" 5 || die "/healthz of $ip failed without PostgreSQL (liveness must not)"; done
relay kube-pg "$KUBE_NET.1" "$PORT_PG"
for ip in "${ips[@]}"; do wait_http "http://$ip:5000/readyz" 60 || die "$ip did not become ready again"; done
for pod in "${pods[@]}"; do
  [ "$(podman inspect "$pod-stowage" --format '{{.RestartCount}}')" = 0 ] || die "$pod's node exited during the outage"
done
log "without PostgreSQL /readyz answered 503 and /healthz 200; both pods ready again after, no restart"

make_test_image "$dir/image"
push_pull "${ips[0]}:5000" "${ips[1]}:5000" verify/kube-a "$dir/image"
push_pull "${ips[1]}:5000" "${ips[0]}:5000" verify/kube-b "$dir/image"
for i in 0 1; do
  n=$(podman logs "${pods[i]}-stowage" 2>&1 | grep -c '"path":"/v2/verify/' || true)
  log "${pods[i]} logged $n registry requests"
  [ "$n" -gt 0 ] || die "${pods[i]} served no registry request"
done
log "kube check passed"
