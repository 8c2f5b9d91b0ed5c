#!/usr/bin/env bash
# Checks the Debian package scripts/build-deb.sh made: its contents, its unit file
# (systemd-analyze verify, where systemd is installed), and the unpacked binary serving MQTT
# with the packaged default configuration. The last part runs in private mount and network
# namespaces (unshare, as root), so the packaged absolute paths (/etc/mqtt-broker,
# /var/lib/mqtt-broker) and port 1883 are the namespace's, not this machine's.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
deb=$(ls "$target"/debian/mqtt-broker_*.deb | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/mqtt-broker ./etc/mqtt-broker/mqtt-broker.conf \
    ./etc/mqtt-broker/conf.d/README ./usr/share/man/man8/mqtt-broker.8 \
    ./usr/share/man/man5/mqtt-broker.conf.5 ./usr/lib/systemd/system/mqtt-broker.service \
    ./usr/share/doc/mqtt-broker/copyright; do
  grep -q " $path\$" <<<"$contents" || { echo "missing from the package: $path" >&2; exit 1; }
done
# Nothing that an installed mosquitto owns.
if grep -q "mosquitto" <<<"$(awk '{print $6}' <<<"$contents")"; then
  echo "the package ships a file named after mosquitto" >&2
  exit 1
fi
dpkg-deb --field "$deb" Package Depends
dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep postinst >/dev/null || { echo "no postinst" >&2; exit 1; }
grep -q "adduser --system" <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst)
grep -q "^conffiles\|/etc/mqtt-broker/mqtt-broker.conf" <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)

root="$work/root"
dpkg-deb -x "$deb" "$root"
if command -v systemd-analyze >/dev/null 2>&1; then
  # The unpacked root lacks what the unit leans on from the system: its targets and kill(1).
  verify="$work/verify-root"
  cp -a "$root" "$verify"
  mkdir -p "$verify/bin"
  cp /bin/kill "$verify/bin/"
  cp -a /usr/lib/systemd/system/*.target "$verify/usr/lib/systemd/system/" 2>/dev/null || true
  root_for_verify="$verify"
  systemd-analyze verify --root="$root_for_verify" --man=no /usr/lib/systemd/system/mqtt-broker.service \
    2>&1 | tee "$work/verify.log"
  if grep -qi "error\|invalid\|unknown" "$work/verify.log"; then
    echo "systemd-analyze verify found problems in the unit" >&2
    exit 1
  fi
else
  echo "notice: systemd-analyze is not installed; the unit file is not verified"
fi
"$root/usr/bin/mqtt-broker" --version
man -l "$root/usr/share/man/man5/mqtt-broker.conf.5" >/dev/null 2>&1 || true

# The packaged configuration, at its packaged paths, inside namespaces of its own.
unshare --mount --net bash -euo pipefail -c '
  root=$1
  ip link set lo up
  mount -t tmpfs tmpfs /etc
  cp -a "$root/etc/mqtt-broker" /etc/mqtt-broker
  mount -t tmpfs tmpfs /var/lib
  mkdir -p /var/lib/mqtt-broker
  "$root/usr/bin/mqtt-broker" check-config /etc/mqtt-broker/mqtt-broker.conf
  "$root/usr/bin/mqtt-broker" -c /etc/mqtt-broker/mqtt-broker.conf &
  broker=$!
  for _ in $(seq 100); do
    mosquitto_pub -h 127.0.0.1 -p 1883 -t probe -m x -q 1 2>/dev/null && break
    sleep 0.1
  done
  mosquitto_pub -h 127.0.0.1 -p 1883 -r -q 1 -t tele/plug/LWT -m Online
  got=$(mosquitto_sub -h 127.0.0.1 -p 1883 -t tele/plug/LWT -C 1 -W 5)
  kill -TERM "$broker"
  wait "$broker"
  [ "$got" = Online ] || { echo "the packaged broker did not serve: $got" >&2; exit 1; }
  ls /var/lib/mqtt-broker/mqtt-broker.redb
' check-deb "$root"
echo "package OK: $deb"
