#!/usr/bin/env bash
# Installs Debian's Chromium and chromedriver for the report's browser test
# (tests/e2e/test_report_browser.py) when they are missing and apt-get can run (root on Debian).
# Elsewhere it says in one line that the browser test will skip; under CI (CI=true) it fails instead.
set -uo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    exit $?
fi
echo "install_browser: chromium/chromedriver missing and apt-get unavailable (not root?): the report's browser test will skip" >&2
[ "${CI:-}" = true ] && exit 1
exit 0
