"""Shared fixtures: small synthetic tasks and a runner for the shell entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run one of the repository's uc_*.sh scripts with this interpreter's environment."""
    env = dict(os.environ, VIRTUAL_ENV=str(Path(sys.executable).parent.parent))
    return subprocess.run(
        ["bash", str(REPO / script), *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture
def run_uc():
    return run_script
