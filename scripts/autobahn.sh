#!/usr/bin/env bash
# Runs the Autobahn|Testsuite cases (via PyPI's `kosoku`) against the echo
# example and summarises the report.
#
#   scripts/autobahn.sh            # cases 1-7, 9, 10 and the CI subset of 12/13 must pass
#   AUTOBAHN_COMPRESSION=all scripts/autobahn.sh   # all 216 compression cases
#   CASES="2.* 5.*" scripts/autobahn.sh   # a subset (no compression cases)
#
# The CI subset of the compression cases: every offer variant of 13 (13.1-13.7:
# default, client_no_context_takeover, server window 8 and 15, with and
# without server_no_context_takeover, several offers) and one text (12.1) and
# one binary (12.3) corpus, each with the message sizes 16 B-16 KiB and the
# fragmented ones (x.y.1-7, 11-12): the 1,000-message 32-128 KiB cases only
# add time.
#
# Needs: python3 with `pip install kosoku`. Reports: target/autobahn/.
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

cargo build --release --example echo --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
./target/release/examples/echo --addr "$addr" >"$out/echo.log" 2>&1 &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null || true; wait "$echo_pid" 2>/dev/null || true' EXIT
# Wait until the echo server listens (at most 10 s).
for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

include=()
compression=0
if [[ -n "${CASES:-}" ]]; then
    for c in $CASES; do include+=(-i "$c"); done
else
    # Case groups 1-10 (there is no group 8), then compression apart.
    for g in 1 2 3 4 5 6 7 9 10; do include+=(-i "$g.*"); done
    compression=1
fi

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

python3 - "$out" "$compression" "$status" <<'PY'
import json, sys
from collections import Counter
out, compression, status = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
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
for line in bad:
    print("  FAILED", line)
if bad or status != 0:
    print(f"autobahn: {len(bad)} case(s) not passing (kosoku exit {status}); see {out}/")
    sys.exit(1)
print(f"autobahn: all passing; reports in {out}/")
PY
