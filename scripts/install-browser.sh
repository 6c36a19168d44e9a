#!/usr/bin/env bash
# Installs what the headless-browser gallery test drives, idempotently (cheap when already there):
# Debian's Chromium and its matching ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver).
# Selenium itself is in the project's `dev` extra. No browser is downloaded from anywhere else.
# Without root/apt the step is skipped with a note; the gallery test then skips with the reason.
set -euo pipefail

have_browser() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if have_browser; then
    echo "install-browser: $(/usr/bin/chromedriver --version 2>/dev/null | head -1) present"
    exit 0
fi

packages=(chromium chromium-driver fonts-liberation)
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "install-browser: installing ${packages[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "install-browser: installing ${packages[*]} (sudo apt)"
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
    echo "install-browser: cannot install Chromium here (no root/apt); the gallery browser test will skip"
    exit 0
fi

have_browser || { echo "install-browser: chromium installed but /usr/bin/chromedriver missing" >&2; exit 1; }
echo "install-browser: $(/usr/bin/chromedriver --version | head -1) installed"
