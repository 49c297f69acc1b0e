#!/usr/bin/env bash
# Checks a tms HTML report in a headless browser: the page loads, every figure has a non-zero
# rendered size, and there are no script or console errors. Also writes a screenshot to look at.
#
# Usage: scripts/check-report.sh REPORT_DIR
#
# How: index.html carries a small inline script that, on load, measures every figure and records
# "OK n" or "FAIL n (k empty)" in <html data-check="...">. Chromium's --dump-dom prints the DOM
# after load; this script reads data-check from it, compares n with the figures in the file, and
# scans chromium's log for console errors. Installs Debian's chromium if it is missing.
# Exit: 0 pass, 1 fail, 2 usage or setup error.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 REPORT_DIR" >&2
    exit 2
fi
dir=$(cd "$1" && pwd) || { echo "check-report: no such directory: $1" >&2; exit 2; }
page="$dir/index.html"
if [[ ! -f "$page" ]]; then
    echo "check-report: FAIL: $page does not exist" >&2
    exit 1
fi

browser=""
for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [[ -z "$browser" ]]; then
    echo "check-report: installing chromium (Debian package)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium >&2
    browser=chromium
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --disable-dev-shm-usage --hide-scrollbars --virtual-time-budget=5000)

# 1. Load the page, run the check script, dump the DOM; keep chromium's log for console errors.
"$browser" "${flags[@]}" --user-data-dir="$work/profile-dom" \
    --enable-logging=stderr --v=0 \
    --dump-dom "file://$page" >"$work/dom.html" 2>"$work/dom.log" || {
    echo "check-report: FAIL: chromium exited with an error" >&2
    tail -n 20 "$work/dom.log" >&2
    exit 1
}

# 2. Screenshot of the whole report (tall window) beside the report.
shot="$dir/screenshot.png"
"$browser" "${flags[@]}" --user-data-dir="$work/profile-shot" \
    --window-size=1400,6000 --screenshot="$shot" "file://$page" >/dev/null 2>"$work/shot.log" || true

failures=()
check=$(grep -o 'data-check="[^"]*"' "$work/dom.html" | head -n 1 | sed 's/^data-check="//; s/"$//' || true)
expected=$(grep -o '<figure class="fig">' "$page" | wc -l | tr -d ' ')
if [[ -z "$check" ]]; then
    failures+=("the page's check script did not run (no data-check attribute after load)")
elif [[ "$check" != "OK $expected" ]]; then
    failures+=("figure check: '$check', expected 'OK $expected'")
fi
if grep -E 'Uncaught|CONSOLE\([0-9]+\)|console\.error|:ERROR:CONSOLE' "$work/dom.log" \
    | grep -v -i -E 'dbus|gcm|fontconfig' >"$work/console.txt"; then
    failures+=("console errors: $(head -c 400 "$work/console.txt")")
fi
if grep -E -o '(src|href)="https?://[^"]*"' "$page" | head -n 3 >"$work/remote.txt" && [[ -s "$work/remote.txt" ]]; then
    failures+=("remote resources referenced: $(tr '\n' ' ' <"$work/remote.txt")")
fi

if [[ ${#failures[@]} -eq 0 ]]; then
    echo "check-report: PASS: $page loads, $expected figures rendered with non-zero size, no console errors (screenshot: $shot)"
    exit 0
fi
echo "check-report: FAIL: $page" >&2
for f in "${failures[@]}"; do echo "  - $f" >&2; done
exit 1
