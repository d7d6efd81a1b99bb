"""Downloads against a local HTTP server: good, truncated, corrupt and missing files, and the CLI."""

import gzip
import hashlib
import io
import struct
import zipfile

import numpy as np
import pytest

from backprop.data import DownloadError, download, load_task
from backprop.data.download import REGISTRY, RemoteDataset, RemoteFile
from backprop.data_cli import data_command

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


FILES: dict[str, bytes] = {}  # what the local server serves (conftest's files_handler)
REQUESTS: list[str] = []  # the paths it was asked for


@pytest.fixture(scope="module")
def server(serve_http, files_handler):
    with serve_http(files_handler(FILES, REQUESTS)) as url:
        yield url


@pytest.fixture
def toy(monkeypatch, server):
    """A one-file dataset in the registry, served by the local server."""
    FILES.clear()
    FILES["toy.bin"] = PAYLOAD
    REQUESTS.clear()
    spec = RemoteDataset(
        name="toy",
        folder="toy",
        description="test",
        credit="test",
        mirrors=(f"{server}/good/",),
        files=(RemoteFile("toy.bin", hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD)),),
    )
    monkeypatch.setitem(REGISTRY, "toy", spec)
    return server


def test_failing_mirrors_are_skipped_until_a_good_one(tmp_path, toy):
    lines, calls = [], []
    mirrors = [f"{toy}/missing/", f"{toy}/short/", f"{toy}/corrupt/", f"{toy}/good/"]
    folder = download(
        "toy", dest=tmp_path, mirrors=mirrors, progress=lambda d, t: calls.append((d, t)), log=lines.append
    )
    assert (folder / "toy.bin").read_bytes() == PAYLOAD
    assert not list(folder.glob("*.part"))
    text = "\n".join(lines)
    assert "HTTP 404" in text and "truncated: received 5120 of 10240 bytes" in text
    assert "SHA-256 mismatch" in text
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_all_mirrors_failing_lists_each_reason_and_leaves_nothing(tmp_path, toy):
    mirrors = [f"{toy}/missing/", f"{toy}/short/", f"{toy}/corrupt/", "http://127.0.0.1:9/"]
    with pytest.raises(DownloadError) as info:
        download("toy", dest=tmp_path, mirrors=mirrors, timeout=5)
    reasons = dict(info.value.attempts)
    assert list(reasons) == [m + "toy.bin" for m in mirrors]
    assert "HTTP 404" in reasons[mirrors[0] + "toy.bin"]
    assert "truncated" in reasons[mirrors[1] + "toy.bin"]
    assert "SHA-256 mismatch" in reasons[mirrors[2] + "toy.bin"]
    assert "cannot connect" in reasons[mirrors[3] + "toy.bin"]
    for m in mirrors:
        assert m + "toy.bin" in str(info.value)
    assert list((tmp_path / "toy").iterdir()) == []


def test_verified_file_is_skipped_and_a_corrupt_one_replaced(tmp_path, toy):
    download("toy", dest=tmp_path)
    REQUESTS.clear()
    lines = []
    download("toy", dest=tmp_path, log=lines.append)
    assert REQUESTS == [] and "already present and verified" in lines[0]

    (tmp_path / "toy" / "toy.bin").write_bytes(b"x" * len(PAYLOAD))
    download("toy", dest=tmp_path, log=lines.append)
    assert (tmp_path / "toy" / "toy.bin").read_bytes() == PAYLOAD
    assert any("present but SHA-256 mismatch" in line and "downloading it again" in line for line in lines)


def test_unknown_name_is_an_input_error():
    from backprop.errors import InputError

    with pytest.raises(InputError, match="fashion-mnist"):
        download("cifar-10")


def test_cli_download_and_errors(tmp_path, toy, capsys):
    assert (
        data_command(
            [
                "download",
                "toy",
                "--dest",
                str(tmp_path),
                "--mirror",
                f"{toy}/missing/",
                "--mirror",
                f"{toy}/good/",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "toy: ready in" in out and "HTTP 404" in err and "100%" in err
    assert data_command(["download", "toy", "--dest", str(tmp_path / "x"), "--mirror", f"{toy}/short/"]) == 1
    err = capsys.readouterr().err
    assert "every mirror failed" in err and "truncated" in err and "Traceback" not in err
    assert data_command(["download", "nope"]) == 2
    assert "error: name:" in capsys.readouterr().err
    assert data_command(["download", "toy", "--timeout", "0"]) == 2
    assert "--timeout" in capsys.readouterr().err
    assert data_command(["list"]) == 0
    assert "fashion-mnist" in capsys.readouterr().out


def _idx_gz(array, magic):
    array = np.asarray(array, dtype=np.uint8)
    return gzip.compress(struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes())


def test_emnist_zip_is_unpacked_and_loads(tmp_path, monkeypatch, server):
    """A miniature NIST zip: python-mnist's select_emnist reads the unpacked files (and un-transposes)."""
    rng = np.random.RandomState(0)
    images = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for variant in ("digits", "mnist", "letters"):
            for split, n in (("train", 20), ("test", 10)):
                x = rng.randint(0, 256, (n, 28, 28))
                images[variant, split] = x
                labels = (np.arange(n) % 4) + (1 if variant == "letters" else 0)
                zf.writestr(f"gzip/emnist-{variant}-{split}-images-idx3-ubyte.gz", _idx_gz(x, 2051))
                zf.writestr(f"gzip/emnist-{variant}-{split}-labels-idx1-ubyte.gz", _idx_gz(labels, 2049))
    archive = buffer.getvalue()
    FILES.clear()
    FILES["gzip.zip"] = archive
    real = REGISTRY["emnist"]
    spec = RemoteDataset(
        real.name,
        real.folder,
        real.description,
        real.credit,
        (f"{server}/good/",),
        (RemoteFile("gzip.zip", hashlib.sha256(archive).hexdigest()),),
        real.unpack,
        real.unpacked,
    )
    monkeypatch.setitem(REGISTRY, "emnist", spec)
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path))
    folder = download("emnist")
    assert not (folder / "gzip.zip").exists() and (folder / "SHA256SUMS").is_file()
    assert len(list(folder.glob("emnist-*.gz"))) == 12

    ds = load_task("emnist-digits", digits=None)
    assert ds.x_train.shape == (20, 784) and ds.class_names == ["0", "1", "2", "3"]
    expected = images["digits", "train"][0].T / 255.0  # EMNIST images are stored transposed
    np.testing.assert_array_equal(ds.x_train[0].reshape(28, 28), expected)
    letters = load_task("emnist-letters", digits=(1, 2))
    assert letters.class_names == ["A", "B"]
