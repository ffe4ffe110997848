"""Cluster profiles: found by name or path, checked field by field, overridden by the env."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import load_profile
from workbench.errors import ProfileError

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_profiles_load() -> None:
    dev = load_profile(REPO / "clusters" / "dev.yaml")
    assert dev.cluster_mode
    assert dev.scheduler_address == "tcp://127.0.0.1:8786"
    assert dev.lease_ms > dev.renew_deadline_ms > dev.renew_interval_ms
    assert not load_profile(REPO / "clusters" / "local.yaml").cluster_mode


def test_a_profile_by_name_under_clusters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / "lab.yaml").write_text("redis_url: rediss://:pw@redis.lab:6380/2\n")
    monkeypatch.chdir(tmp_path)
    settings = load_profile("lab")
    assert settings.redis_url == "rediss://:pw@redis.lab:6380/2"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("redis_url: redis://a:1/0\ncapacity: 3\n")
    monkeypatch.setenv("WORKBENCH_REDIS_URL", "redis://b:2/0")
    settings = load_profile(path)
    assert settings.redis_url == "redis://b:2/0"
    assert settings.capacity == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis_url: redis://a:1/0\ncapasity: 3\n", "unknown settings capasity"),
        ("capacity: zero\n", "capacity"),
        ("- a list\n", "must be a mapping"),
        ("redis_url: [unclosed\n", "cannot read cluster profile"),
    ],
)
def test_bad_profiles_say_which_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_missing_profile_names_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError, match="no cluster profile named 'nowhere'"):
        load_profile("nowhere")
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "missing.yaml")
