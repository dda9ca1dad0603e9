#!/usr/bin/env bash
# Install the Coral Vision server into this Debian system, as root: Debian's python3 and libusb,
# libedgetpu from the community fork's release package, and a venv with the pinned requirements.
# The app's Dockerfile runs it, and so does scripts/setup in a Debian chroot of the same release
# (that chroot is what tests/app starts the server in), and it installs the server on a Debian
# host too (see DOCS.md). It expects the engine in $CORAL_VISION_HOME/engine (default
# /opt/coral-vision/engine) and requirements.txt beside this script.
#   CORAL_VISION_SKIP_LIBEDGETPU=1  skip libedgetpu (for a machine that cannot reach GitHub)
set -euo pipefail

HOME_DIR=${CORAL_VISION_HOME:-/opt/coral-vision}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# libedgetpu is no longer published by Google (its apt repository is archived); feranick/libedgetpu
# keeps it building against current TensorFlow and releases a .deb per Debian release and arch.
# "std" runs the Edge TPU at its standard clock: "max" is faster but runs hot, a bad default for a
# USB stick in a closed cabinet.
LIBEDGETPU_TAG=16.0TF2.19.1-1
LIBEDGETPU_DEB=libedgetpu1-std_16.0tf2.19.1-1
# sha256 of each .deb, checked when set. Not obtainable from the machine these were written on
# (no access to GitHub release downloads): fill them in from `sha256sum` of the downloaded files.
LIBEDGETPU_SHA256_amd64=""
LIBEDGETPU_SHA256_arm64=""

log() { printf 'install: %s\n' "$*" >&2; }

install_system_packages() {
  log "Debian packages"
  # A mirror that is a snapshot serves Release files past their Valid-Until date.
  apt-get -o Acquire::Check-Valid-Until=false update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv libusb-1.0-0 ca-certificates curl >/dev/null
}

install_libedgetpu() {
  if [[ ${CORAL_VISION_SKIP_LIBEDGETPU:-} == 1 ]]; then
    log "libedgetpu skipped (CORAL_VISION_SKIP_LIBEDGETPU=1): Edge TPUs will not be usable"
    return 0
  fi
  local arch release deb sha var
  arch=$(dpkg --print-architecture)
  release=$(. /etc/os-release && echo "$VERSION_CODENAME")
  case $arch in
    amd64 | arm64) ;;
    *) log "no libedgetpu package for $arch"; return 1 ;;
  esac
  deb="$LIBEDGETPU_DEB.${release}_$arch.deb"
  log "libedgetpu $LIBEDGETPU_TAG ($deb)"
  curl -fsSL --retry 3 -o "/tmp/$deb" \
    "https://github.com/feranick/libedgetpu/releases/download/$LIBEDGETPU_TAG/$deb"
  var="LIBEDGETPU_SHA256_$arch"
  sha=${!var}
  if [[ -n $sha ]]; then
    echo "$sha  /tmp/$deb" | sha256sum -c --quiet -
  else
    log "no pinned sha256 for $deb; downloaded $(sha256sum "/tmp/$deb" | cut -d' ' -f1)"
  fi
  # apt-get (not dpkg -i) so that the package's own dependencies come along.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "/tmp/$deb" >/dev/null
  rm -f "/tmp/$deb"
}

install_python_packages() {
  log "Python packages in $HOME_DIR/venv"
  rm -rf "$HOME_DIR/venv"
  python3 -m venv "$HOME_DIR/venv"
  "$HOME_DIR/venv/bin/pip" install -q --no-cache-dir --disable-pip-version-check \
    --only-binary=:all: --require-hashes -r "$HERE/requirements.txt"
}

# Fail the build now, not at the first start, if the server cannot import what it needs.
check_imports() {
  PYTHONPATH=$HOME_DIR "$HOME_DIR/venv/bin/python" -c \
    'import engine, ai_edge_litert.interpreter, numpy, PIL.Image, aiohttp, zeroconf'
  PYTHONPATH=$HOME_DIR "$HOME_DIR/venv/bin/python" -m engine.server --help >/dev/null
  if [[ ${CORAL_VISION_SKIP_LIBEDGETPU:-} != 1 ]]; then
    # The library links (its dependencies came along); opening a device needs a Coral.
    "$HOME_DIR/venv/bin/python" -c 'import ctypes; ctypes.CDLL("libedgetpu.so.1")'
  fi
}

install_system_packages
install_libedgetpu
install_python_packages
check_imports
log "done"
