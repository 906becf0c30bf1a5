"""Declared dependencies: the torch floor that makes weights-only checkpoint loading safe."""

from __future__ import annotations

import re

import torch
from packaging.requirements import Requirement
from packaging.version import Version

from helpers import REPO

# torch <= 2.5.1 runs code from a crafted file even with torch.load(weights_only=True) (CVE-2025-32434).
UNSAFE_TORCH = ("2.1.0", "2.5.1")
SAFE_TORCH = Version("2.6.0")


def _torch_requirements() -> dict[str, Requirement]:
    pyproject = (REPO / "pyproject.toml").read_text()
    requirements = (REPO / "requirements.txt").read_text()
    found = {
        "pyproject.toml": re.findall(r'^\s*"(torch(?:[<>=!~ ][^"]*)?)"', pyproject, re.MULTILINE),
        "requirements.txt": [
            line.split("#")[0].strip() for line in requirements.splitlines() if re.match(r"torch\b", line)
        ],
    }
    assert all(len(specs) == 1 for specs in found.values()), found
    return {name: Requirement(specs[0]) for name, specs in found.items()}


def test_torch_floor_excludes_versions_whose_weights_only_loading_is_unsafe():
    requirements = _torch_requirements()
    for name, requirement in requirements.items():
        assert not any(requirement.specifier.contains(v) for v in UNSAFE_TORCH), (name, str(requirement))
        assert requirement.specifier.contains(str(SAFE_TORCH)), (name, str(requirement))
    assert len({str(r.specifier) for r in requirements.values()}) == 1, "pyproject.toml and requirements.txt disagree"
    assert Version(Version(torch.__version__).base_version) >= SAFE_TORCH
