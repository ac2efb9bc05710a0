from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, WheelhouseError
from orchestrator.images.wheelhouse import (
    COMPLETE,
    Platform,
    WheelhouseTarget,
    ensure_wheelhouse,
    export_wheelhouse,
    platform_from_flags,
    recorded_platform,
    wheelhouse_key,
    write_record,
)
from tests.support.cli import NO_ENGINE, assert_one_error, mlorch


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


@pytest.mark.subprocess
def test_given_wheelhouse_that_lacks_packages_is_rejected_offline(tmp_path: Path) -> None:
    with pytest.raises(WheelhouseError, match="does not satisfy"):
        ensure_wheelhouse(("numpy==2.4.6",), Platform("3.11", "2.36"), tmp_path / "cache", tmp_path)


BOOKWORM = Platform("3.11", "2.36")
TARGET = WheelhouseTarget("reference", "cpu", "mlorch/base:bookworm")


@pytest.mark.parametrize(
    ("made_for", "serves"),
    [
        (Platform("3.11", "2.36"), True),
        (Platform("3.11", "2.28"), True),  # older manylinux wheels run on a newer glibc
        (Platform("3.11", "2.39"), False),  # newer ones do not run on an older glibc
        (Platform("3.12", "2.36"), False),
        (Platform("3.12", "2.39"), False),  # `mlorch wheelhouse`'s defaults (the NGC base)
        (Platform("3.11", "2.36", "aarch64"), False),
    ],
)
def test_which_recorded_platforms_serve_bookworm(made_for: Platform, serves: bool) -> None:
    assert made_for.serves(BOOKWORM) is serves


def test_wheelhouse_made_for_another_python_is_refused_before_pip(tmp_path: Path) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    write_record(folder, ("numpy==2.4.6",), Platform("3.12", "2.39"), None)
    with pytest.raises(WheelhouseError) as caught:
        ensure_wheelhouse(("numpy==2.4.6",), BOOKWORM, tmp_path / "cache", folder, TARGET)
    error = caught.value
    assert error.exit_code == 4
    assert error.message == (
        f"wheelhouse {folder} was made for Python 3.12 / glibc 2.39 (x86_64), "
        "but mlorch/base:bookworm runs Python 3.11 / glibc 2.36 (x86_64)"
    )
    assert error.hint == (
        "make one for this image (on a connected host): mlorch wheelhouse reference "
        f"--device cpu --base-image mlorch/base:bookworm -o {folder}"
    )


@pytest.mark.subprocess
def test_fitting_record_lets_pip_judge_the_wheels(tmp_path: Path) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    write_record(folder, ("numpy==2.4.6",), Platform("3.11", "2.31"), "some/image:tag")
    with pytest.raises(WheelhouseError, match="does not satisfy") as caught:
        ensure_wheelhouse(("numpy==2.4.6",), BOOKWORM, tmp_path / "cache", folder, TARGET)
    assert caught.value.hint is not None
    assert TARGET.remake_command(folder) in caught.value.hint


def test_cache_marker_format_reads_as_a_record(tmp_path: Path) -> None:
    (tmp_path / COMPLETE).write_text(
        json.dumps({"requirements": ["numpy==2.4.6"], "platform": BOOKWORM.__dict__})
    )
    assert recorded_platform(tmp_path) == BOOKWORM
    assert recorded_platform(tmp_path / "elsewhere") is None


def test_unreadable_record_is_an_error(tmp_path: Path) -> None:
    (tmp_path / COMPLETE).write_text('{"platform": {"python": "3.11"}}')
    with pytest.raises(WheelhouseError, match="unreadable wheelhouse record"):
        recorded_platform(tmp_path)


def test_record_accumulates_requirements_and_keeps_the_base(tmp_path: Path) -> None:
    write_record(tmp_path, ("a==1", "pip==26.3"), BOOKWORM, "mlorch/base:bookworm")
    write_record(tmp_path, ("b==2", "pip==26.3"), BOOKWORM, None)
    record = json.loads((tmp_path / COMPLETE).read_text())
    assert record["requirements"] == ["a==1", "b==2", "pip==26.3"]
    assert record["base_image"] == "mlorch/base:bookworm"
    assert record["platform"] == {"python": "3.11", "glibc": "2.36", "machine": "x86_64"}


def test_export_into_a_folder_for_another_platform_is_refused(tmp_path: Path) -> None:
    write_record(tmp_path, ("numpy==2.4.6",), Platform("3.12", "2.39"), None)
    with pytest.raises(WheelhouseError, match=r"already holds wheels for Python 3\.12"):
        export_wheelhouse(("numpy==2.4.6",), BOOKWORM, tmp_path)
    assert not list(tmp_path.glob("*.whl"))


def test_remake_command_quotes_what_the_shell_would_split() -> None:
    target = WheelhouseTarget("reference", "cpu", "my registry/base:1")
    assert target.remake_command(Path("lab wheels")) == (
        "mlorch wheelhouse reference --device cpu --base-image 'my registry/base:1' -o 'lab wheels'"
    )


@pytest.mark.parametrize(
    ("python", "glibc", "key"), [("3", "2.39", "python"), ("3.12", "239", "glibc")]
)
def test_platform_flags_are_validated(python: str, glibc: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        platform_from_flags(python, glibc)
    assert caught.value.key == key


def test_cli_refuses_base_image_together_with_python(tmp_path: Path) -> None:
    result = mlorch(
        "wheelhouse", "reference", "--device", "cpu", "--base-image", "mlorch/base:bookworm",
        "--python", "3.11", "-o", str(tmp_path / "w"), env=NO_ENGINE,
    )  # fmt: skip
    assert_one_error(result, 2, "--base-image and --python/--glibc both name the target platform")
    assert not (tmp_path / "w").exists()


def test_cli_refuses_a_malformed_python(tmp_path: Path) -> None:
    result = mlorch("wheelhouse", "reference", "--python", "3", "-o", str(tmp_path / "w"))
    assert_one_error(result, 2, "--python 3: expected a CPython version like 3.12")


def test_sources_are_pinned_sdists_and_part_of_the_key() -> None:
    from orchestrator.images.wheelhouse import sdist_name

    assert sdist_name("mlcommons-loadgen==6.0.17") == "mlcommons_loadgen-6.0.17.tar.gz"
    assert sdist_name("Some.Odd_Name==1.0") == "some_odd_name-1.0.tar.gz"
    with pytest.raises(ValueError, match="pinned"):
        sdist_name("mlcommons-loadgen")
    pins = ("numpy==2.4.6",)
    plain = wheelhouse_key(pins, BOOKWORM)
    assert wheelhouse_key(pins, BOOKWORM, ()) == plain  # keys without sources are unchanged
    assert wheelhouse_key(pins, BOOKWORM, ("mlcommons-loadgen==6.0.17",)) != plain


def test_a_given_wheelhouse_without_the_source_archive_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.images import wheelhouse

    monkeypatch.setattr(wheelhouse, "_pip_download", lambda *args, **kwargs: None)  # wheels ok
    (tmp_path / "pip-26.3-py3-none-any.whl").write_bytes(b"")
    sources = ("mlcommons-loadgen==6.0.17",)
    missing = r"lacks the source archive mlcommons_loadgen-6\.0\.17"
    with pytest.raises(WheelhouseError, match=missing):
        ensure_wheelhouse((), BOOKWORM, tmp_path / "cache", tmp_path, TARGET, sources)
    (tmp_path / "mlcommons_loadgen-6.0.17.tar.gz").write_bytes(b"")
    house = ensure_wheelhouse((), BOOKWORM, tmp_path / "cache", tmp_path, TARGET, sources)
    assert house.sdists() == [tmp_path / "mlcommons_loadgen-6.0.17.tar.gz"]


def test_an_exported_dell_trt_wheelhouse_fetches_the_loadgen_source_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.images import wheelhouse

    calls: list[list[str]] = []

    def download(args: list[str], what: str, hint: str | None = None) -> None:
        calls.append(args)
        if "--no-binary" in args:  # what pip leaves in the folder
            (tmp_path / "mlcommons_loadgen-6.0.17.tar.gz").write_bytes(b"")
        else:
            (tmp_path / "pip-26.3-py3-none-any.whl").write_bytes(b"")

    monkeypatch.setattr(wheelhouse, "_pip_download", download)
    sources = ("mlcommons-loadgen==6.0.17",)
    house = export_wheelhouse(("numpy==2.4.6",), BOOKWORM, tmp_path, sources=sources)
    assert calls[1] == [
        "--no-deps", "--no-binary", "mlcommons-loadgen", "-d", str(tmp_path),
        "mlcommons-loadgen==6.0.17",
    ]  # fmt: skip
    assert house.sdists() == [tmp_path / "mlcommons_loadgen-6.0.17.tar.gz"]
    export_wheelhouse(("numpy==2.4.6",), BOOKWORM, tmp_path, sources=sources)
    assert len(calls) == 3  # the wheels again, the source not: it is there
