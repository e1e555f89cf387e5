"""The package metadata uses the forms current setuptools reads without a deprecation warning."""

from __future__ import annotations

from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_licence_is_an_spdx_string_that_the_build_backend_reads():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    data = tomllib.loads(PYPROJECT.read_text())
    assert data["project"]["license"] == "Apache-2.0"  # not the deprecated {text = ...} table
    # setuptools reads an SPDX string from 77.0 on; an older one would reject it
    requires = data["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("setuptools>=") for r in requires)
    (spec,) = [r for r in requires if r.startswith("setuptools")]
    assert int(spec.split(">=")[1].split(".")[0]) >= 77
