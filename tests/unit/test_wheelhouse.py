from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import WheelhouseError
from orchestrator.wheelhouse import Platform, ensure_wheelhouse, wheelhouse_key


def test_platform_tags_cover_older_manylinux() -> None:
    tags = Platform("3.11", "2.36").pip_platforms()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in tags
    assert "manylinux_2_17_x86_64" in tags
    assert tags[-2:] == ["manylinux2014_x86_64", "manylinux1_x86_64"]


def test_key_depends_on_python_and_pins() -> None:
    a = wheelhouse_key(("numpy==2.4.6",), Platform("3.11", "2.36"))
    assert a != wheelhouse_key(("numpy==2.4.6",), Platform("3.12", "2.36"))
    assert a != wheelhouse_key(("numpy==2.4.5",), Platform("3.11", "2.36"))


def test_given_wheelhouse_that_lacks_packages_is_rejected_offline(tmp_path: Path) -> None:
    with pytest.raises(WheelhouseError, match="does not satisfy"):
        ensure_wheelhouse(("numpy==2.4.6",), Platform("3.11", "2.36"), tmp_path / "cache", tmp_path)
