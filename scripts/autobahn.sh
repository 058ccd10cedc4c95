#!/usr/bin/env bash
# Runs the Autobahn|Testsuite cases (via PyPI's `kosoku`) against the echo
# example and summarises the report.
#
#   scripts/autobahn.sh            # cases 1-7, 9, 10 and the CI subset of 12/13 must pass,
#                                  # then cases 1-10 again over wss://
#   AUTOBAHN_COMPRESSION=all scripts/autobahn.sh   # all 216 compression cases
#   CASES="2.* 5.*" scripts/autobahn.sh   # a subset (no compression cases, no wss://)
#   AUTOBAHN_WSS=0 scripts/autobahn.sh    # without the wss:// run
#
# The wss:// run: kosoku has no TLS client, so scripts/tls_bridge.py (Python
# standard library) accepts its plain connections and relays each over TLS
# to the echo example's wss:// port, trusting a CA made for the run with
# openssl (in target/autobahn/tls, never committed).
#
# The CI subset of the compression cases: every offer variant of 13 (13.1-13.7:
# default, client_no_context_takeover, server window 8 and 15, with and
# without server_no_context_takeover, several offers) and one text (12.1) and
# one binary (12.3) corpus, each with the message sizes 16 B-16 KiB and the
# fragmented ones (x.y.1-7, 11-12): the 1,000-message 32-128 KiB cases only
# add time.
#
# Needs: python3 with `pip install kosoku`, and openssl for the wss:// run.
# Reports: target/autobahn/.
# Exit status: non-zero when a case FAILED (any case, 12/13 included, must be
# OK, NON-STRICT or INFORMATIONAL; UNIMPLEMENTED fails too).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kosoku >/dev/null 2>&1; then
    echo "autobahn: kosoku not found (pip install kosoku)" >&2
    exit 2
fi

out=target/autobahn
rm -rf "$out"
mkdir -p "$out"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# Waits until something listens on 127.0.0.1:$1 (at most 10 s).
wait_port() {
    for _ in $(seq 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "autobahn: nothing listens on port $1" >&2
    return 1
}

include=()
compression=0
wss=0
if [[ -n "${CASES:-}" ]]; then
    for c in $CASES; do include+=(-i "$c"); done
else
    # Case groups 1-10 (there is no group 8), then compression apart.
    for g in 1 2 3 4 5 6 7 9 10; do include+=(-i "$g.*"); done
    compression=1
    [[ "${AUTOBAHN_WSS:-1}" == 0 ]] || wss=1
fi

echo_args=()
if [[ $wss == 1 ]]; then
    # A CA and a certificate for localhost, made for this run only.
    tls="$out/tls"
    mkdir -p "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=wshub autobahn CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>"$tls/openssl.log"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$tls/key.pem" -out "$tls/server.csr" 2>>"$tls/openssl.log"
    printf '%s\n' subjectAltName=DNS:localhost,IP:127.0.0.1 basicConstraints=CA:FALSE \
        keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth \
        subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >"$tls/ext.cnf"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls/ext.cnf" -out "$tls/cert.pem" 2>>"$tls/openssl.log"
    tls_port=$(free_port)
    echo_args=(--tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" --tls-addr "127.0.0.1:$tls_port")
fi

cargo build --release --example echo --quiet
port=$(free_port)
addr="127.0.0.1:$port"
./target/release/examples/echo --addr "$addr" "${echo_args[@]}" >"$out/echo.log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true' EXIT
wait_port "$port"

status=0
echo "== autobahn: ${CASES:-cases 1-10} against the echo example on $addr"
kosoku "${include[@]}" -o "$out/core" "$addr" >"$out/core.txt" 2>&1 || status=$?
if [[ $compression == 1 ]]; then
    comp=()
    if [[ "${AUTOBAHN_COMPRESSION:-ci}" == all ]]; then
        comp=(-i '12.*' -i '13.*')
    else
        for g in 12.1 12.3 13.1 13.2 13.3 13.4 13.5 13.6 13.7; do
            for n in 1 2 3 4 5 6 7 11 12; do comp+=(-i "$g.$n"); done
        done
    fi
    echo "== autobahn: compression cases 12, 13 (${AUTOBAHN_COMPRESSION:-ci} set; permessage-deflate must pass)"
    kosoku "${comp[@]}" -o "$out/compression" "$addr" >"$out/compression.txt" 2>&1 || status=$?
fi
if [[ $wss == 1 ]]; then
    wait_port "$tls_port"
    python3 scripts/tls_bridge.py --connect "127.0.0.1:$tls_port" --ca "$tls/ca.pem" \
        >"$out/bridge.out" 2>"$out/bridge.log" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q '^LISTEN ' "$out/bridge.out" 2>/dev/null && break
        sleep 0.1
    done
    bridge_port=$(sed -n 's/^LISTEN //p' "$out/bridge.out")
    if [[ -z "$bridge_port" ]]; then
        echo "autobahn: the TLS bridge did not start; see $out/bridge.log" >&2
        exit 1
    fi
    echo "== autobahn: cases 1-10 over wss:// (echo on 127.0.0.1:$tls_port, through scripts/tls_bridge.py)"
    wss_start=$SECONDS
    kosoku "${include[@]}" -o "$out/wss" "127.0.0.1:$bridge_port" >"$out/wss.txt" 2>&1 || status=$?
    echo "   (wss:// run: $((SECONDS - wss_start)) s)"
fi

python3 - "$out" "$compression" "$status" "$wss" <<'PY'
import json, sys
from collections import Counter
out, compression, status = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
wss = sys.argv[4] == "1"
ok = {"OK", "NON-STRICT", "INFORMATIONAL"}
bad = []

def load(name):
    with open(f"{out}/{name}/index.json") as f:
        return next(iter(json.load(f).values()))

core = load("core")
print(f"cases 1-10: {len(core)} run; behavior {dict(Counter(v['behavior'] for v in core.values()))}; "
      f"close {dict(Counter(v['behaviorClose'] for v in core.values()))}")
for case, v in core.items():
    if v["behavior"] not in ok or v["behaviorClose"] not in ok:
        bad.append(f"{case}: behavior={v['behavior']} close={v['behaviorClose']}")
if compression:
    comp = load("compression")
    print(f"cases 12-13: {len(comp)} run; behavior {dict(Counter(v['behavior'] for v in comp.values()))}")
    for case, v in comp.items():
        if v["behavior"] not in ok or v["behaviorClose"] not in ok:
            bad.append(f"{case}: behavior={v['behavior']} close={v['behaviorClose']}")
if wss:
    tls = load("wss")
    print(f"cases 1-10 over wss://: {len(tls)} run; behavior {dict(Counter(v['behavior'] for v in tls.values()))}; "
          f"close {dict(Counter(v['behaviorClose'] for v in tls.values()))}")
    if len(tls) != len(core):
        bad.append(f"wss://: {len(tls)} cases run, {len(core)} over ws://")
    for case, v in tls.items():
        if v["behavior"] not in ok or v["behaviorClose"] not in ok:
            bad.append(f"wss:// {case}: behavior={v['behavior']} close={v['behaviorClose']}")
for line in bad[:40]:
    print("  FAILED", line)
if len(bad) > 40:
    print(f"  ... and {len(bad) - 40} more")
if bad or status != 0:
    print(f"autobahn: {len(bad)} case(s) not passing (kosoku exit {status}); see {out}/")
    sys.exit(1)
print(f"autobahn: all passing; reports in {out}/")
PY
