from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import DEFAULT_TUNING, Device, Profile, build_spec, load_file_config
from orchestrator.errors import ConfigError


def test_unknown_file_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("[run]\nthreds = 4\n")
    with pytest.raises(ConfigError, match="unknown key 'threds'") as info:
        load_file_config(cfg)
    assert info.value.key == "threds"
    assert info.value.exit_code == 2


def test_unknown_table_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("[rn]\nthreads = 4\n")
    with pytest.raises(ConfigError, match="unknown table 'rn'"):
        load_file_config(cfg)


def test_bad_value_names_key(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text('[run]\nprofile = "fast"\n')
    with pytest.raises(ConfigError, match="profile"):
        load_file_config(cfg)


def test_valid_file(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text('[run]\nprofile = "quick"\nscenarios = ["Offline"]\nthreads = 2\n')
    loaded = load_file_config(cfg)
    assert loaded.profile is Profile.QUICK
    assert loaded.threads == 2


def test_spec_rejects_unknown_and_empty() -> None:
    base = {"backend": "reference", "device": "cpu", "tuning": DEFAULT_TUNING[Device.CPU]}
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        build_spec({**base, "colour": "red"})
    with pytest.raises(ConfigError, match="scenario"):
        build_spec({**base, "scenarios": ()})
    spec = build_spec(base)
    assert spec.synthetic
    assert not spec.quick_run
    assert len(spec.scenarios) == 4
    assert len(spec.modes) == 2


def test_memory_limit_is_validated() -> None:
    base = {"backend": "reference", "device": "cpu", "tuning": DEFAULT_TUNING[Device.CPU]}
    assert build_spec(base).memory_bytes is None
    assert build_spec({**base, "memory": "8g"}).memory_bytes == 8 << 30
    assert build_spec({**base, "memory": "512M"}).memory_bytes == 512 << 20
    assert build_spec({**base, "memory": "1073741824"}).memory_bytes == 1 << 30
    with pytest.raises(ConfigError, match=r"memory: .*'8 gigs' is not a size like 8g") as info:
        build_spec({**base, "memory": "8 gigs"})
    assert info.value.key == "memory"
    with pytest.raises(ConfigError, match="below the engine's minimum of 6m"):
        build_spec({**base, "memory": "1m"})


def test_limits_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text('[run]\nmemory = "4g"\nbuild_timeout_s = 600\n')
    loaded = load_file_config(cfg)
    assert (loaded.memory, loaded.build_timeout_s) == ("4g", 600)
