from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from ivi_rl.envs import ChecksumError, DataFile, MissingDataError, data_dir, data_path, make_problem
from ivi_rl.envs import data as data_module
from ivi_rl.envs._lzw import decompress_z
from ivi_rl.envs.loaders import read_npz

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_SHA = "205fac96121e38773281bd88607efabd4f3c8cbdb3ffe393f08e0f4da16179c7"


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("IVI_RL_DATA", str(tmp_path / "env"))
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("IVI_RL_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_dir() == tmp_path / "cache" / "ivi_rl"
    with pytest.raises(TypeError, match=r"data_dir=3 must be a path"):
        data_dir(3)


def test_missing_file_names_file_source_and_directory(tmp_path):
    with pytest.raises(MissingDataError) as err:
        data_path("mushroom", "agaricus-lepiota.data", tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "mushroom" / "agaricus-lepiota.data") in message
    assert "archive.ics.uci.edu" in message and f"into {tmp_path / 'mushroom'}" in message
    with pytest.raises(MissingDataError, match=r"has no public download.*probml"):
        make_problem("jester", data_dir=tmp_path)


def test_checksum_mismatch(tmp_path):
    (tmp_path / "statlog").mkdir()
    (tmp_path / "statlog" / "shuttle.trn").write_text("1 2 3 4 5 6 7 8 9 1\n")
    with pytest.raises(
        ChecksumError, match=r"shuttle.trn has sha256 [0-9a-f]{64}, but the canonical"
    ):
        make_problem("statlog", data_dir=tmp_path)


def test_shared_files_pass_their_checksums(shared_data):
    for dataset, name in [
        ("mushroom", "agaricus-lepiota.data"),
        ("statlog", "shuttle.trn"),
        ("financial", "financial.npz"),
        ("jester", "jester.npz"),
    ]:
        assert data_path(dataset, name, shared_data, download=False).exists()


@pytest.fixture
def http_root(tmp_path):
    """Serve a folder on 127.0.0.1; yields (folder, base url)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _register(monkeypatch, spec: DataFile) -> None:
    monkeypatch.setitem(data_module.FILES, (spec.dataset, spec.name), spec)


def test_download_verifies_and_writes_atomically(http_root, tmp_path, monkeypatch):
    root, url = http_root
    payload = b"1 2 3\n4 5 6\n"
    (root / "table.txt").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    _register(monkeypatch, DataFile("toy", "table.txt", good, f"{url}/table.txt", source="test"))
    target = tmp_path / "data"
    path = data_path("toy", "table.txt", target)
    assert path == target / "toy" / "table.txt" and path.read_bytes() == payload
    # a corrupt download is never moved into place and leaves no partial file behind
    _register(monkeypatch, DataFile("toy", "bad.txt", "0" * 64, f"{url}/table.txt", source="test"))
    with pytest.raises(ChecksumError):
        data_path("toy", "bad.txt", target)
    assert sorted(p.name for p in (target / "toy").iterdir()) == ["table.txt"]


def test_download_of_a_unix_compressed_file(http_root, tmp_path, monkeypatch):
    root, url = http_root
    (root / "lines.Z").write_bytes((FIXTURES / "random_lines_b10.Z").read_bytes())
    _register(monkeypatch, DataFile("toy", "lines.txt", FIXTURE_SHA, f"{url}/lines.Z", "Z", "test"))
    path = data_path("toy", "lines.txt", tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FIXTURE_SHA


def test_failed_download_says_where_to_put_the_file(http_root, tmp_path, monkeypatch):
    _, url = http_root
    _register(monkeypatch, DataFile("toy", "gone.txt", None, f"{url}/gone.txt", source="test"))
    with pytest.raises(
        MissingDataError, match=r"the download failed \(HTTP Error 404.*put gone.txt into"
    ):
        data_path("toy", "gone.txt", tmp_path)
    assert not (tmp_path / "toy").exists()  # no empty dataset folder left behind
    (tmp_path / "mine").mkdir()  # a folder the user made stays, even empty
    with pytest.raises(MissingDataError):
        data_path("toy", "gone.txt", tmp_path / "mine")
    assert (tmp_path / "mine").is_dir() and not (tmp_path / "mine" / "toy").exists()


def test_lzw_decoder_on_a_fixture_with_table_clears():
    """random_lines_b10.Z: 45 kB of text compressed by ncompress with 10-bit codes; its
    alphabet changes twice, so the table fills and two CLEAR codes occur (checked when the
    fixture was made). The decoded bytes must hash to the original's sha256."""
    out = decompress_z((FIXTURES / "random_lines_b10.Z").read_bytes())
    assert hashlib.sha256(out).hexdigest() == FIXTURE_SHA
    with pytest.raises(ValueError, match=r"bad magic bytes"):
        decompress_z(b"PK\x03\x04")


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"contexts": np.zeros((3, 2))}, r"missing arrays \['rewards'\]"),
        (
            {"contexts": np.zeros((3, 2)), "rewards": np.zeros((4, 2))},
            r"contexts has shape \(3, 2\)",
        ),
        (
            {"contexts": np.zeros((3, 2)), "rewards": np.zeros((3, 2)), "opt_actions": np.zeros(2)},
            "opt_actions has shape",
        ),
        (
            {"contexts": np.full((3, 2), np.nan), "rewards": np.zeros((3, 2))},
            "contexts must be finite numbers",
        ),
        (
            {"contexts": np.array([["a", "b"]] * 3), "rewards": np.zeros((3, 2))},
            "contexts must be finite numbers",
        ),
    ],
)
def test_npz_validation(tmp_path, arrays, match):
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        read_npz(tmp_path / "x.npz")


def test_npz_with_pickled_objects_is_refused(tmp_path):
    np.savez(
        tmp_path / "obj.npz", contexts=np.array([{"a": 1}], dtype=object), rewards=np.zeros((1, 2))
    )
    with pytest.raises(ValueError, match=r"not a readable .npz without pickles"):
        read_npz(tmp_path / "obj.npz")
    with pytest.raises(MissingDataError, match=r"does not exist"):
        read_npz(tmp_path / "nope.npz")
