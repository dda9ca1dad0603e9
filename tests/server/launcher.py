"""Start the server with fake Edge TPUs (tests only; the fakes never enter the product).

    python tests/server/launcher.py --fake-tpus N --twin CPU_MODEL -- SERVER_OPTIONS...

Installs tests/engine/fakes.py's FakeEdgeTpu (libedgetpu plus real CPU interpreters) as the
runtime and N USB Edge TPUs as the devices found, then runs the server's own main().
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.server.__main__ import main
from custom_components.coral_vision.engine.server.app import AppSettings
from tests.engine.fakes import FakeEdgeTpu


def launch(argv: list[str]) -> int:
    """Parse the launcher's own options, then run the server with the rest."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--fake-tpus", type=int, default=2)
    parser.add_argument("--twin", type=Path, required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    fake = FakeEdgeTpu(cpu_twin=args.twin.read_bytes())
    tpus = [EdgeTpu("usb", i, f"/fake/usb{i}", f"usb:{i}") for i in range(args.fake_tpus)]
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return main(rest, AppSettings(runtime=fake.runtime(), list_tpus=lambda: tpus))


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
