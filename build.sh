#!/usr/bin/env bash
# One entry point for newcomers, developers and CI.
#   ./build.sh setup        Debian packages + .venv with the project (editable); idempotent, quiet
#   ./build.sh test         setup, then the whole test suite (conformance runs when ../shared/corpus exists)
#   ./build.sh demo         setup, then inspect the bundled capture with the demo rules and show the summary and a few events
#   ./build.sh bench        setup, then the throughput/memory benchmark against tshark
#   ./build.sh bench-scan   setup (+ Debian's clamav if missing), then `utm scan` against clamscan on one file set
#   ./build.sh conformance  setup, then the corpus conformance report (suricata-verify, tshark, Zeek)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
DEBS=(tshark)
PY=${PYTHON:-python3}

log() { printf '%s\n' "$*" >&2; }

setup_debs() {
    local missing=()
    for p in "${DEBS[@]}"; do
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
        exec "$VENV/bin/python" -m pytest "$@" ;;
    demo)
        setup
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
    *)
        sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
        exit 2 ;;
esac
