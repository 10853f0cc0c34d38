"""The public surface is a promise: changing it must be a deliberate, visible act."""

from __future__ import annotations

import subprocess
import sys

import casematch


def test_public_api_is_pinned() -> None:
    # Sorted the way ruff's RUF022 keeps it.
    assert casematch.__all__ == [
        "Case", "CaseIndex", "CasematchError", "ConfigError", "Encoder", "Filters",
        "IndexFormatError", "IndexLockedError", "InputError", "Match", "Message",
        "MissingDependencyError", "ModelMismatchError", "ReadOptions", "ReadReport",
        "SearchOptions", "Settings", "UpdateResult", "Visibility", "__version__",
        "load_encoder", "read_source",
    ]
    for name in casematch.__all__:
        assert hasattr(casematch, name), name


def test_every_error_shares_one_root() -> None:
    for name in casematch.__all__:
        obj = getattr(casematch, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, casematch.CasematchError), name


def test_importing_casematch_does_not_load_torch() -> None:
    code = "import sys, casematch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
