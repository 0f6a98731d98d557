#!/usr/bin/env bash
# Run by `mvn verify` (the root pom, before any module; skipped with -DskipTests): the training UI's browser test
# (TrainingUiBrowserTest) drives Debian's headless Chromium and its ChromeDriver at fixed paths, so that Selenium
# downloads nothing. Installs both when they are missing and this user may install packages (root, or sudo without a
# password); otherwise stops the build with what to install. It never lets the test be skipped.
set -euo pipefail

chromium=/usr/bin/chromium
driver=/usr/bin/chromedriver
if [ -x "$chromium" ] && [ -x "$driver" ]; then
  exit 0
fi

packages="chromium chromium-driver"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test setup: $chromium and $driver are missing and this is not a Debian/Ubuntu system (no apt-get):" \
       "install Chromium and ChromeDriver so that they are at those paths, then run the tests again." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "test setup: $chromium and $driver are missing and this user cannot install packages." >&2
  echo "test setup: run 'sudo apt-get update && sudo apt-get install -y $packages', then the tests again." >&2
  exit 1
fi

echo "test setup: installing Debian's $packages (for the training UI's browser test)..." >&2
start=$(date +%s)
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
if [ ! -x "$chromium" ] || [ ! -x "$driver" ]; then
  echo "test setup: apt-get installed $packages but $chromium or $driver is still missing" >&2
  exit 1
fi
echo "test setup: installed $("$chromium" --version 2>/dev/null | head -1) in $(( $(date +%s) - start )) s" >&2
