#!/usr/bin/env bash
# Converge test of the minipaas role, in the spirit of Molecule (not installable here):
# lint -> create hosts -> converge -> idempotence -> check mode -> --tags docker -> verify -> destroy.
#
# The hosts are two systemd-less Debian bookworm containers (built by build-host-image.sh from a
# debootstrap root filesystem), each running its own dockerd, reached with the community.docker.docker
# connection: [managers] manager1, [workers] worker1. Telegram is a local HTTP receiver on the hosts'
# bridge gateway (telegram_api_url points at it), so alerts from syslog-ng and the monitoring script are
# checked end to end. swarm-cronjob and the runtime stack (Caddy, registry) need images from a registry,
# which cannot be reached here: they are off (swarm_cronjob_enabled / minipaas_runtime_enabled false).
#
# Usage: ansible/test/converge.sh      KEEP=1 leaves the hosts running for inspection.
# Prints "CONVERGE OK" last when every check passed; exits non-zero otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ansible_dir=$(cd "$here/.." && pwd)
repo=$(cd "$ansible_dir/.." && pwd)
image=${MINIPAAS_ANSIBLE_HOST_IMAGE:-minipaas-test/ansible-host:bookworm-r2}
id="mpa$$"
work=$(mktemp -d "/tmp/minipaas-converge.XXXXXX")
net="$id-net"
hosts=(manager1 worker1)
receiver_pid=""

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  if [ "${KEEP:-0}" = 1 ]; then
    echo "KEEP=1: hosts ${hosts[*]/#/$id-}, network $net and $work left in place"
    return
  fi
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null || true
  for h in "${hosts[@]}"; do docker rm -f -v "$id-$h" >/dev/null 2>&1 || true; done
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

on() { local h=$1; shift; docker exec "$id-$h" "$@"; }

step "ansible-lint (production profile)"
(cd "$ansible_dir" && ansible-lint --offline -q) || fail "ansible-lint"

step "host image"
bash "$here/build-host-image.sh" "$image"

step "create hosts"
docker network create "$net" >/dev/null
for h in "${hosts[@]}"; do
  docker run -d --name "$id-$h" --hostname "$h" --network "$net" \
    --init --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v /var/lib/docker \
    --label minipaas-test=ansible-converge "$image" >/dev/null
done
ip_of() { docker inspect -f "{{ (index .NetworkSettings.Networks \"$net\").IPAddress }}" "$id-$1"; }
manager_ip=$(ip_of manager1)
worker_ip=$(ip_of worker1)
gateway=$(docker network inspect -f '{{ (index .IPAM.Config 0).Gateway }}' "$net")
echo "manager1 $manager_ip, worker1 $worker_ip, control host $gateway"

step "TLS material (minipaas certs)"
cli=(node "$repo/packages/cli/bin/minipaas.js")
"${cli[@]}" certs server --dir "$work/certs" --san "$manager_ip" --san "$worker_ip" --san manager1 --san worker1 >/dev/null
"${cli[@]}" certs client --dir "$work/certs" >/dev/null

step "Telegram stand-in"
cat >"$work/receiver.py" <<'PY'
import http.server, sys, urllib.parse
out = open(sys.argv[3], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = urllib.parse.parse_qs(body)
        out.write("%s chat=%s text=%s\n" % (self.path, form.get("chat_id", [""])[0], form.get("text", [""])[0].replace("\n", " | ")))
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(b'{"ok":true}')
    def log_message(self, *a): pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$work/receiver.py" "$gateway" "$port" "$work/telegram.log" &
receiver_pid=$!
touch "$work/telegram.log"

mkdir -p "$work/inventory/group_vars"
cat >"$work/inventory/hosts.ini" <<INI
[managers]
manager1 ansible_host=$id-manager1

[workers]
worker1 ansible_host=$id-worker1

[all:vars]
ansible_connection=community.docker.docker
ansible_python_interpreter=/usr/bin/python3
INI
cat >"$work/inventory/group_vars/all.yml" <<YML
---
docker_tls_dir: $work/certs
telegram_bot_token: "123456:converge-test"
telegram_chat_id: "-1000042"
telegram_api_url: "http://$gateway:$port"
firewall_docker_api_sources: ["$gateway"]
monitoring_disk_threshold_percent: 1
swarm_cronjob_enabled: false
minipaas_runtime_enabled: false
docker_sysvinit_relaxed_ulimits: true
YML
playbook() { ANSIBLE_FORCE_COLOR=0 ANSIBLE_PIPELINING=1 ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks ansible-playbook -i "$work/inventory/hosts.ini" "$ansible_dir/install.yml" "$@"; }
recap_field() { # recap_field LOG HOST FIELD
  sed -n "s/^$2 *: .*$3=\([0-9]*\).*/\1/p" "$1" | tail -1
}

step "converge"
start=$(date +%s)
playbook >"$work/converge.log" 2>&1 || { tail -60 "$work/converge.log"; fail "converge run failed"; }
sed -n '/PLAY RECAP/,$p' "$work/converge.log"
echo "converge took $(( $(date +%s) - start )) s"

step "idempotence (second run)"
start=$(date +%s)
playbook >"$work/idempotence.log" 2>&1 || { tail -60 "$work/idempotence.log"; fail "second run failed"; }
sed -n '/PLAY RECAP/,$p' "$work/idempotence.log"
for h in "${hosts[@]}"; do
  c=$(recap_field "$work/idempotence.log" "$h" changed)
  [ "$c" = 0 ] || { grep -B2 -A6 '^changed:' "$work/idempotence.log" | head -60; fail "second run: $h changed=$c"; }
done
echo "second run took $(( $(date +%s) - start )) s, changed=0 on every host; slowest tasks:"
sed -n '/^=\{20,\}/,$p' "$work/idempotence.log" | sed -n '2,6p'


step "check mode"
playbook --check >"$work/check.log" 2>&1 || { tail -60 "$work/check.log"; fail "--check run failed"; }
sed -n '/PLAY RECAP/,$p' "$work/check.log"

step "--tags docker"
playbook --tags docker --list-tasks >"$work/tags.log" 2>&1 || { cat "$work/tags.log"; fail "--list-tasks"; }
listed=$(grep -c 'TAGS: \[' "$work/tags.log" || true)
others=$(grep 'TAGS: \[' "$work/tags.log" | grep -v 'play #' | grep -vE 'TAGS: \[[^]]*(docker|always)' || true)
[ "$listed" -gt 0 ] && [ -z "$others" ] || { cat "$work/tags.log"; fail "--tags docker lists other tasks"; }
playbook --tags docker >"$work/tags-run.log" 2>&1 || { tail -40 "$work/tags-run.log"; fail "--tags docker run failed"; }
sed -n 's/^ *minipaas : \(.*\)\tTAGS: .*/TASK [minipaas : \1]/p' "$work/tags.log" | sort -u >"$work/tags-listed.txt"
ran=$(grep -E '^TASK \[' "$work/tags-run.log" | sed 's/ \*\+$//' | grep -v 'Gathering Facts' | sort -u | comm -23 - "$work/tags-listed.txt")
[ -z "$ran" ] || { echo "$ran"; fail "--tags docker ran other tasks"; }
grep -E '^TASK \[' "$work/tags-run.log" | sed 's/ \*\+$//'

step "verify: swarm"
nodes=$(on manager1 docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}')
echo "$nodes"
grep -q '^manager1 Ready Leader' <<<"$nodes" || fail "manager1 is not the leader"
grep -q '^worker1 Ready' <<<"$nodes" || fail "worker1 has not joined"
[ "$(on worker1 docker info --format '{{.Swarm.LocalNodeState}}')" = active ] || fail "worker1 swarm state"
label=$(on manager1 docker node inspect manager1 --format '{{ index .Spec.Labels "manager" }}')
[ "$label" = true ] || fail "manager1 lacks the manager label (got '$label')"
wlabel=$(on manager1 docker node inspect worker1 --format '{{ index .Spec.Labels "manager" }}')
[ -z "$wlabel" ] || fail "worker1 carries a manager label"
echo "manager label: manager1=$label worker1=${wlabel:-none}"

step "verify: TLS Docker API"
c="$work/certs"
version=$(curl -sS --max-time 10 --cacert "$c/ca.pem" --cert "$c/cert.pem" --key "$c/key.pem" "https://$manager_ip:2376/version") \
  || fail "the API does not answer with a client certificate"
grep -q '"ApiVersion"' <<<"$version" || fail "unexpected /version answer: $version"
echo "with client certificate: $(grep -o '"Version":"[^"]*"' <<<"$version" | head -1)"
if curl -sS --max-time 10 --cacert "$c/ca.pem" "https://$manager_ip:2376/version" >"$work/nocert.out" 2>&1; then
  fail "the API answered without a client certificate: $(cat "$work/nocert.out")"
fi
echo "without client certificate: refused ($(head -c 120 "$work/nocert.out"))"
DOCKER_HOST="tcp://$worker_ip:2376" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$c" docker info --format 'docker CLI over TLS to worker1: swarm {{.Swarm.LocalNodeState}}' \
  || fail "docker CLI over TLS to worker1"
on manager1 sh -c 'cat /etc/docker/daemon.json'

step "verify: fail2ban"
for h in "${hosts[@]}"; do
  st=$(on "$h" fail2ban-client status) || fail "fail2ban not running on $h"
  grep -q 'sshd' <<<"$st" && grep -q 'minipaas-docker-api' <<<"$st" || fail "$h jails: $st"
  echo "$h: $(grep 'Jail list' <<<"$st" | tr -s '\t ' ' ')"
done

# The refused handshake above is in dockerd's log, where the Docker API jail counts it.
for _ in $(seq 1 20); do
  failed=$(on manager1 fail2ban-client status minipaas-docker-api | sed -n 's/.*Total failed:[[:space:]]*//p')
  [ "${failed:-0}" -ge 1 ] && break
  sleep 1
done
[ "${failed:-0}" -ge 1 ] || fail "the Docker API jail did not count the refused TLS handshake"
echo "manager1 minipaas-docker-api jail: total failed $failed (the handshake without a client certificate)"

step "verify: syslog-ng forwards errors to Telegram"
for h in "${hosts[@]}"; do
  on "$h" syslog-ng --syntax-only || fail "syslog-ng configuration on $h"
  on "$h" sh -c 'syslog-ng-ctl stats >/dev/null' || fail "syslog-ng not running on $h"
done
probe="converge-probe-$id-$RANDOM"
on worker1 logger -p user.err -t probe "$probe"
on worker1 logger -p user.info -t probe "$probe-info"
for _ in $(seq 1 30); do grep -q "$probe" "$work/telegram.log" && break; sleep 1; done
grep -q "$probe" "$work/telegram.log" || { on worker1 cat /etc/syslog-ng/conf.d/minipaas.conf; fail "the error line did not reach the Telegram stand-in"; }
grep "$probe" "$work/telegram.log"
grep -q "text=\[worker1\] probe: $probe" "$work/telegram.log" || fail "the forwarded message is not '[host] program: message'"
grep -q "$probe-info" "$work/telegram.log" && fail "an info-level line was forwarded"
on worker1 grep -q "$probe" /var/log/minipaas-errors.log || fail "error log file"

step "verify: monitoring alert"
on manager1 sh -c 'grep -h minipaas-monitor /etc/cron.d/minipaas-monitor'
: >"$work/telegram-before.log"; cp "$work/telegram.log" "$work/telegram-before.log"
on manager1 /usr/local/bin/minipaas-monitor || fail "monitoring script failed"
for _ in $(seq 1 10); do diff -q "$work/telegram.log" "$work/telegram-before.log" >/dev/null || break; sleep 1; done
grep -q 'bot123456:converge-test/sendMessage chat=-1000042 text=\[minipaas\] manager1 | disk / at' "$work/telegram.log" \
  || { cat "$work/telegram.log"; fail "no disk alert from the monitoring script"; }
grep 'manager1 | disk' "$work/telegram.log" | tail -1

step "verify: nftables"
for h in "${hosts[@]}"; do
  rules=$(on "$h" nft list table inet minipaas) || fail "table inet minipaas not loaded on $h"
  grep -q 'policy drop' <<<"$rules" || fail "$h input policy is not drop"
done
on manager1 nft list table inet minipaas
# The control host is not a node: the swarm port is dropped for it (timeout), the TLS API is allowed.
if timeout 4 bash -c "exec 3<>/dev/tcp/$manager_ip/2377" 2>/dev/null; then
  fail "2377 is reachable from a non-node address"
fi
echo "2377 from the control host: dropped"
# Docker's own rules are still there next to the role's table.
on manager1 sh -c 'nft list ruleset | grep -q "chain DOCKER"' || fail "Docker's rules were flushed"

step "CONVERGE OK"
echo "CONVERGE OK"
