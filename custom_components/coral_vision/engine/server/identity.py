"""Who the server is: its persistent id, its version and the version of its API."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

from ..models.store import write_atomically

API_VERSION = "1"
ID_FILE = "server_id"
MANAGEMENT_KEY_FILE = "management_key"
# The integration's manifest sits two folders up when the engine runs from a checkout or the app.
_MANIFEST = Path(__file__).resolve().parents[2] / "manifest.json"


def read_version(manifest: Path = _MANIFEST) -> str:
    """The integration's version, from its manifest; "unknown" when it is not beside the engine."""
    try:
        version = json.loads(manifest.read_text("utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"
    return version if isinstance(version, str) else "unknown"


def server_id(data_dir: Path) -> str:
    """The server's UUID, made on first start and kept in the data folder (blocking)."""
    path = data_dir / ID_FILE
    try:
        return str(uuid.UUID(path.read_text("ascii").strip()))
    except (OSError, ValueError):
        pass  # absent or damaged: a new id, which discovery then announces
    new = str(uuid.uuid4())
    write_atomically(path, lambda out: out.write(f"{new}\n".encode()), lambda _: None)
    return new


def management_key(data_dir: Path) -> str:
    """The key that guards model management when no API key is set (blocking).

    Made on first start and kept in the data folder, readable by its owner only: detection may
    be left open on a trusted network, but deploying, uploading and removing models never is.
    """
    path = data_dir / MANAGEMENT_KEY_FILE
    try:
        key = path.read_text("ascii").strip()
    except (OSError, ValueError):
        key = ""
    if len(key) >= 32:
        return key
    key = secrets.token_urlsafe(32)
    write_atomically(path, lambda out: out.write(f"{key}\n".encode()), lambda _: None)
    path.chmod(0o600)
    return key
