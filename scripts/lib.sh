# Shared by the scripts in this folder: where the two test environments live and how to run in them.
# shellcheck shell=bash
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENVS="$ROOT/.envs"                       # ignored by git; everything setup installs lives here
SHARED=$(realpath -m "${CORAL_VISION_SHARED:-$ROOT/../shared}")
export CORAL_VISION_SHARED="$SHARED"

# The oldest supported Home Assistant runs on Python 3.13 in a plain venv.
OLDEST_VENV="$ENVS/oldest"
# The newest runs on Python 3.14: a system python3.14 if there is one, else a Debian chroot.
CHROOT="$ENVS/py314-chroot"
NEWEST_VENV_IN_CHROOT="/opt/coral-vision-venv"
# The Home Assistant app's server, installed by the app's own install.sh in a Debian chroot of the
# release its Dockerfile names (scripts/setup app); tests/app start the server in it.
APP_DIR="$ROOT/coral_vision_server"
APP_CHROOT="$ENVS/app-chroot"
APP_HOME_IN_CHROOT="/opt/coral-vision"
# scripts/develop --check drives Debian's Chromium with Playwright from this venv (on this machine).
BROWSER_VENV="$ENVS/browser"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

find_python313() {
  local candidate
  for candidate in python3.13 "$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13" \
    /root/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

find_python314() {
  local candidate
  for candidate in python3.14 /usr/local/bin/python3.14 /usr/bin/python3.14; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 14)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# How the newest environment is reached: "host" (python3.14 on this machine) or "chroot".
newest_mode() {
  if [[ -x "$ENVS/newest/bin/python" ]] || find_python314 >/dev/null; then
    echo host
  else
    echo chroot
  fi
}

# Run a command inside the Python 3.14 chroot.
in_chroot() {
  [[ -x "$CHROOT/usr/bin/python3.14" ]] || die "the Python 3.14 chroot is missing: run scripts/setup"
  run_in_chroot "$CHROOT" "$NEWEST_VENV_IN_CHROOT/bin" "$@"
}

# Run a command inside the app's chroot (see setup_app in scripts/setup).
in_app_chroot() {
  [[ -f "$APP_CHROOT/.complete" ]] || die "the app chroot is missing: run scripts/setup app"
  run_in_chroot "$APP_CHROOT" "$APP_HOME_IN_CHROOT/venv/bin" "$@"
}

# Run a command inside the chroot $1 with the venv bin folder $2 first on PATH, in a private mount
# namespace so that no mount outlives the command. The repository's parent folder (repo and
# ../shared) appears at the same path inside, so paths are identical in and out. From inside a
# chroot (tests/app run from the newest environment) "/" is no mount point whose propagation could
# change, and the namespace around it is already private.
run_in_chroot() {
  local chroot_dir=$1 venv_bin=$2 parent propagation=private
  shift 2
  parent=$(cd "$ROOT/.." && pwd)
  mountpoint -q / || propagation=unchanged
  cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf" 2>/dev/null || true
  VENV_BIN=$venv_bin unshare --mount --propagation "$propagation" -- bash -euo pipefail -c '
    chroot_dir=$1 parent=$2 shared=$3; shift 3
    mount -t proc proc "$chroot_dir/proc"
    mount --rbind /dev "$chroot_dir/dev"
    mount --rbind /sys "$chroot_dir/sys"
    mkdir -p "$chroot_dir$parent"
    mount --bind "$parent" "$chroot_dir$parent"
    if [[ -d $shared && $shared != "$parent/shared" ]]; then
      mkdir -p "$chroot_dir$shared"
      mount --bind "$shared" "$chroot_dir$shared"
    fi
    exec chroot "$chroot_dir" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
      PATH="$VENV_BIN:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin" \
      CORAL_VISION_SHARED="$shared" CORAL_VISION_MIRROR="${CORAL_VISION_MIRROR:-}" CI="${CI:-}" \
      CORAL_VISION_SKIP_LIBEDGETPU="${CORAL_VISION_SKIP_LIBEDGETPU:-}" \
      PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
      SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 \
      bash -c "cd \"\$0\" && exec \"\$@\"" "$PWD" "$@"
  ' _ "$chroot_dir" "$parent" "$SHARED" "$@"
}

# Run a command with the newest environment's bin folder first on PATH.
in_newest() {
  if [[ $(newest_mode) == host ]]; then
    PATH="$ENVS/newest/bin:$PATH" "$@"
  else
    in_chroot "$@"
  fi
}

in_oldest() {
  PATH="$OLDEST_VENV/bin:$PATH" "$@"
}
