#!/usr/bin/env bash
# A software GPU for the WebGPU tests (test/backend/webgpu.test.ts): Mesa's lavapipe (Vulkan) and llvmpipe (EGL/GLES),
# which Dawn uses when there is no hardware GPU. Debian 12's own Mesa 22.3 lavapipe is refused by Dawn (it lacks the
# dynamic-indexing features Dawn requires), so on bookworm Mesa comes from bookworm-backports (25.x); newer releases
# ship a Mesa that works. Idempotent, quiet, and instant when the driver is already there.
set -euo pipefail

lavapipe_ok() {
  [ -f /usr/share/vulkan/icd.d/lvp_icd.json ] && [ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 -o -e /usr/lib/aarch64-linux-gnu/libvulkan.so.1 ] || return 1
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null) || return 1
  dpkg --compare-versions "$v" ge 25
}

lavapipe_ok && exit 0

. /etc/os-release
target=()
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The backports suite lives on the same mirror as the release: reuse the configured one.
    uri=$(awk '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i=="bookworm"){print u; exit}}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || { echo "webgpu-driver: no bookworm mirror configured in /etc/apt; add bookworm-backports by hand" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
      > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  target=(-t bookworm-backports)
fi

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${target[@]}" \
  mesa-vulkan-drivers libvulkan1 libegl-mesa0 libegl1 libgles2 >/dev/null
lavapipe_ok || { echo "webgpu-driver: mesa-vulkan-drivers installed but lavapipe is not usable (need Mesa >= 25)" >&2; exit 1; }
