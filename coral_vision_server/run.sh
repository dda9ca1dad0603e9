#!/usr/bin/env bash
# Start the Coral Vision server, listening on every interface inside the container, with the app's
# options from /data/options.json when there is one (a plain Docker run may use flags or
# CORAL_VISION_* variables instead). Arguments are passed on and win over these (tests/app uses
# that to bind 127.0.0.1 on a free port).
set -euo pipefail

HOME_DIR=${CORAL_VISION_HOME:-/opt/coral-vision}
config=()
if [[ -f /data/options.json ]]; then
  config=(--config /data/options.json)
fi
mkdir -p /data/models
export PYTHONPATH="$HOME_DIR"
exec "$HOME_DIR/venv/bin/python" -m engine.server "${config[@]}" \
  --host 0.0.0.0 --port 32168 --models-dir /data/models --data-dir /data "$@"
