# shellcheck shell=bash
# Shared by run.sh and the checks (sourced). Everything started is recorded for cleanup.
log() { echo "verify: $*" >&2; }
die() { echo "verify: FAILED: $*" >&2; exit 1; }

# wait_http URL SECONDS [CODE]: until URL answers with CODE (default 200).
wait_http() {
  local url=$1 deadline=$((SECONDS + $2)) want=${3:-200} code
  until code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$url") && [ "$code" = "$want" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { log "$url answered ${code:-nothing}, not $want"; return 1; }
    sleep 1
  done
}

# make_test_image DIR: an OCI layout DIR:v1 with a config and two layers, one over the 8 MiB
# S3 part size (multipart upload through the nodes) and one small.
make_test_image() {
  local dir=$1 c
  mkdir -p "$dir/files"
  head -c $((20 * 1024 * 1024 + 12345)) /dev/urandom >"$dir/files/big.bin"
  date +%s%N >"$dir/files/small.txt"
  c=$(buildah from scratch)
  buildah copy --quiet "$c" "$dir/files/big.bin" /big.bin >/dev/null
  buildah commit --quiet --rm "$c" localhost/stowage-verify/tmp:layer1 >/dev/null
  c=$(buildah from localhost/stowage-verify/tmp:layer1)  # a second layer on top
  buildah copy --quiet "$c" "$dir/files/small.txt" /small.txt >/dev/null
  buildah config --label org.opencontainers.image.title=stowage-verify "$c"
  buildah commit --quiet --rm --format oci "$c" "oci:$dir/layout:v1" >/dev/null
  podman rmi -f localhost/stowage-verify/tmp:layer1 >/dev/null
}

# push_pull PUSH_HOST PULL_HOST REPO IMAGE_DIR: push the layout through one address, pull it
# back through another (skopeo checks every digest), and compare manifest digests.
push_pull() {
  local push=$1 pull=$2 repo=$3 dir=$4 creds="admin:$STOWAGE_ADMIN_PASSWORD" sent got
  local opts=(--quiet --dest-tls-verify=false --dest-creds "$creds")
  skopeo copy "${opts[@]}" "oci:$dir/layout:v1" "docker://$push/$repo:v1" || die "push to $push/$repo"
  sent=$(skopeo inspect --tls-verify=false --creds "$creds" --format '{{.Digest}}' "docker://$push/$repo:v1") || die "inspect on $push"
  got=$(skopeo inspect --tls-verify=false --creds "$creds" --format '{{.Digest}}' "docker://$pull/$repo:v1") || die "inspect on $pull"
  [ "$sent" = "$got" ] || die "$repo: digest $sent on $push, $got on $pull"
  rm -rf "$dir/pulled"
  skopeo copy --quiet --src-tls-verify=false --src-creds "$creds" "docker://$pull/$repo@$got" "dir:$dir/pulled" || die "pull from $pull"
  [ "$(sha256sum <"$dir/pulled/manifest.json" | cut -d' ' -f1)" = "${got#sha256:}" ] || die "pulled manifest differs"
  cmp -s <(tar -xOf "$dir/pulled/$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(max(m["layers"], key=lambda l: l["size"])["digest"].split(":")[1])' "$dir/pulled/manifest.json")" 2>/dev/null) "$dir/files/big.bin" \
    || die "the big layer pulled from $pull does not hold the file pushed"
  log "pushed $repo through $push, pulled it through $pull: $got"
}

# show_logs CONTAINER...: the last lines of each container's output, to explain a failure.
show_logs() {
  local c
  for c in "$@"; do echo "---- $c" >&2; podman logs --tail 20 "$c" >&2 2>&1 || true; done
}
