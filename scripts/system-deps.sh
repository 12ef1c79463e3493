#!/usr/bin/env bash
# Debian packages the napari tests need: a virtual X server and the libraries Qt6's xcb plugin loads.
set -euo pipefail
PKGS="xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
      libxcb-render-util0 libxcb-xinerama0 libgl1 libegl1 libfontconfig1 libdbus-1-3"
missing=$(for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-deps: missing $missing; install them (Debian/Ubuntu: apt-get install -y ...) for the napari tests" >&2
    exit 0
fi
echo "system-deps: installing" $missing >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
