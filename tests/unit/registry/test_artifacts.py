"""The artifact store: round trips, checksums checked before unpickling, unique paths."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
from pathlib import Path

import pytest

from workbench.registry.artifact_errors import ArtifactIntegrityError, ArtifactMissingError
from workbench.registry.artifacts import ArtifactStore, StoredArtifact, flavor_of
from workbench.registry.errors import RegistryError, RegistryInputError


class _Writes:
    """Unpickling it writes a marker file: proof that pickle.loads ran on the bytes."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("unpickled",))


def test_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    obj = {"weights": [1.5, 2.5], "labels": ("a", "b")}
    stored = store.save("churn", "3", obj)
    assert isinstance(stored, StoredArtifact)
    assert stored.path.startswith("models/churn/") and stored.path.endswith(".pkl")
    file = tmp_path / stored.path
    data = file.read_bytes()
    assert stored.size == len(data)
    assert stored.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.load(stored.path, stored.checksum) == obj
    # no temp files left behind
    assert [p.name for p in file.parent.iterdir()] == [file.name]


def test_nested_model_name_and_unpicklable_by_pickle(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    stored = store.save("team/churn", "v1", lambda x: x * 2)  # needs cloudpickle
    assert stored.path.startswith("models/team/churn/")
    assert store.load(stored.path, stored.checksum)(21) == 42


def test_tampered_file_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    marker = tmp_path / "marker"
    stored = store.save("m", "1", "innocent")
    # An attacker swaps in a malicious pickle of their own.
    (tmp_path / stored.path).write_bytes(pickle.dumps(_Writes(str(marker))))
    with pytest.raises(ArtifactIntegrityError) as info:
        store.load(stored.path, stored.checksum)
    assert not marker.exists()
    err = info.value
    assert isinstance(err, RegistryError)
    assert stored.path in str(err)
    assert stored.checksum in str(err)
    actual = "sha256:" + hashlib.sha256((tmp_path / stored.path).read_bytes()).hexdigest()
    assert actual in str(err)
    assert "refused, never loaded" in str(err)
    assert (err.expected, err.actual) == (stored.checksum, actual)


def test_the_marker_object_does_write_when_its_checksum_matches(tmp_path: Path) -> None:
    """The control for the test above: the marker object really runs code when loaded."""
    store = ArtifactStore(tmp_path)
    marker = tmp_path / "marker"
    stored = store.save("m", "1", _Writes(str(marker)))
    store.load(stored.path, stored.checksum)
    assert marker.read_text() == "unpickled"


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    stored = store.save("m", "1", list(range(100)))
    file = tmp_path / stored.path
    file.write_bytes(file.read_bytes()[:-1])
    with pytest.raises(ArtifactIntegrityError):
        store.load(stored.path, stored.checksum)


def test_missing_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    stored = store.save("m", "1", 1)
    os.remove(tmp_path / stored.path)
    with pytest.raises(ArtifactMissingError) as info:
        store.load(stored.path, stored.checksum)
    assert isinstance(info.value, RegistryError)
    assert stored.path in str(info.value) and str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "models/../../x.pkl", "../x.pkl", "models//x.pkl", "a\\b"]
)
def test_paths_outside_the_root_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(RegistryInputError, match="invalid artifact path"):
        ArtifactStore(tmp_path).load(path, "sha256:" + "0" * 64)


@pytest.mark.parametrize("checksum", ["", "md5:abc", "sha256:xyz", "sha256:" + "0" * 63])
def test_malformed_checksum(tmp_path: Path, checksum: str) -> None:
    store = ArtifactStore(tmp_path)
    stored = store.save("m", "1", 1)
    with pytest.raises(RegistryInputError, match="invalid checksum"):
        store.load(stored.path, checksum)


@pytest.mark.parametrize("name", ["a/../b", "a/./b", "../a", "a//b", "", "-a"])
def test_unsafe_model_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(RegistryInputError):
        ArtifactStore(tmp_path).save(name, "1", 1)
    assert not (tmp_path / "b").exists()


def test_version_hint_is_sanitised_and_need_not_be_unique(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    a = store.save("m", "../../evil hint", 1)
    b = store.save("m", "../../evil hint", 2)
    assert a.path != b.path
    for stored in (a, b):
        assert stored.path.startswith("models/m/") and ".." not in stored.path
        assert stored.path.count("/") == 2
    assert (store.load(a.path, a.checksum), store.load(b.path, b.checksum)) == (1, 2)


def _save_in_process(args: tuple[str, int]) -> tuple[str, str]:
    root, i = args
    stored = ArtifactStore(Path(root)).save("shared", "1", {"worker": i})
    return stored.path, stored.checksum


def test_concurrent_saves_from_processes_get_distinct_paths(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_save_in_process, [(str(tmp_path), i) for i in range(16)])
    paths = [p for p, _ in results]
    assert len(set(paths)) == 16  # same name, same hint: still 16 files
    store = ArtifactStore(tmp_path)
    loaded = sorted(store.load(p, c)["worker"] for p, c in results)
    assert loaded == list(range(16))
    assert len(list((tmp_path / "models" / "shared").iterdir())) == 16


class _FakeXGB:
    pass


_FakeXGB.__module__ = "xgboost.sklearn"


class _FakeSK:
    pass


_FakeSK.__module__ = "sklearn.ensemble._forest"


class _FakeOther:
    pass


_FakeOther.__module__ = "lightgbm.sklearn"


def test_flavor_of() -> None:
    assert flavor_of(_FakeXGB()) == "xgboost"  # even though its module mentions sklearn
    assert flavor_of(_FakeSK()) == "sklearn"
    assert flavor_of(_FakeOther()) == "lightgbm"
    assert flavor_of(3) == "builtins"
