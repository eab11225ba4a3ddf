#!/usr/bin/env bash
# One entry point for newcomers, developers and CI.
#   ./build.sh setup        Debian packages + .venv with the project (editable); idempotent, quiet
#   ./build.sh test         setup, then the whole test suite (conformance runs when ../shared/corpus exists)
#   ./build.sh demo         setup, then the appliance at work in the testbed (root); else the bundled capture offline
#   ./build.sh bench        setup, then the throughput/memory benchmark against tshark
#   ./build.sh bench-categories  setup, then URL category compile/load/RSS/lookups per second (UT1 lists)
#   ./build.sh bench-scan   setup (+ Debian's clamav if missing), then `utm scan` against clamscan on one file set
#   ./build.sh conformance  setup, then the corpus conformance report (suricata-verify, tshark, Zeek)
#   ./build.sh testbed up|down|status   (root) a small office in network namespaces around the box's bridge
#   ./build.sh bench-live   setup, then the live path (bridge + utm run) against the plain bridge, in namespaces (root)
#   ./build.sh bench-cloud  setup, then the cloud link footprint (throughput, agent memory/CPU, bytes a day)
#   ./build.sh bench-small  setup, then CPU per packet of small connections: live worker and engine (no root)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
DEBS=(tshark iproute2 iptables)   # iproute2/iptables: netconfig's namespace tests
TESTBED_DEBS=(dnsmasq-base curl)   # installed by `testbed up` and the live demo only (curl: the devices)
PY=${PYTHON:-python3}

log() { printf '%s\n' "$*" >&2; }

setup_debs() {
    local missing=()
    for p in "${DEBS[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        log "setup: missing Debian packages (${missing[*]}); run as root or install them"
        return 0
    fi
    log "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_venv() {
    local stamp="$VENV/.setup-stamp" want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    log "setup: creating .venv"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]"
    echo "$want" > "$stamp"
}

setup() { setup_debs; setup_venv; }

case "${1:-}" in
    setup)
        setup ;;
    test)
        setup
        shift
        "$VENV/bin/lint-imports" --no-cache >/dev/null || "$VENV/bin/lint-imports" --no-cache
        "$VENV/bin/mypy" --no-incremental >/dev/null || "$VENV/bin/mypy" --no-incremental
        exec "$VENV/bin/python" -m pytest "$@" ;;
    demo)
        setup
        if [ "$(id -u)" = 0 ]; then setup_debs "${TESTBED_DEBS[@]}" || true; fi
        rc=0; "$VENV/bin/python" -m tests.sim.demo || rc=$?   # live in the testbed; 3: cannot run here
        [ "$rc" -eq 3 ] || exit "$rc"
        out=$(mktemp -d)
        "$VENV/bin/utm" inspect -r "$ROOT/tests/golden/demo/input.pcap" -S "$ROOT/tests/golden/demo/demo.rules" -l "$out"
        echo
        echo "A few events of each kind from $out/eve.json:"
        for t in alert http tls dns fileinfo flow anomaly; do
            grep -m 2 "\"event_type\":\"$t\"" "$out/eve.json" || true
        done
        ;;
    bench)
        setup
        shift
        exec "$VENV/bin/utm" bench "$@" ;;
    bench-categories)
        setup
        shift
        exec "$VENV/bin/utm" categories bench "$@" ;;
    bench-cloud)
        setup
        shift
        exec "$VENV/bin/utm" bench-cloud "$@" ;;
    bench-scan)
        setup
        shift
        if ! command -v clamscan >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ]; then
                log "bench-scan: installing Debian's clamav (for clamscan only; no freshclam, no daemon)"
                export DEBIAN_FRONTEND=noninteractive
                { apt-get update -qq && apt-get install -y -qq --no-install-recommends clamav; } >/dev/null \
                    || log "bench-scan: clamav could not be installed; reporting ours only"
            else
                log "bench-scan: clamscan missing and not root; reporting ours only"
            fi
        fi
        exec "$VENV/bin/python" -m firmware.bench.scan_bench "$@" ;;
    conformance)
        setup
        shift
        exec "$VENV/bin/python" -m tests.conformance.report "$@" ;;
    testbed)
        shift
        if [ "${1:-}" = up ]; then setup_debs "${TESTBED_DEBS[@]}"; fi
        setup_venv
        exec "$VENV/bin/python" -m tests.sim.testbed "$@" ;;
    bench-small)
        setup
        shift
        exec "$VENV/bin/python" -m firmware.bench.small_flows "$@" ;;
    bench-live)
        setup
        shift
        exec "$VENV/bin/python" -m tests.sim.bench_live "$@" ;;
    *)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 2 ;;
esac
