"""Shared test setup: make the repository importable when recapp is not pip-installed."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # `make test` installs recapp in editable mode; a bare checkout needs the root on the path.
    sys.path.insert(0, str(ROOT))
