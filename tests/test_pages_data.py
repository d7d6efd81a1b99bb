"""The Data page's own-data upload and downloads: files checked before they are kept, messages that
name the file, and a download from a local HTTP server with its progress."""

import dataclasses
import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from backprop.config import preset
from backprop.data.download import REGISTRY, RemoteDataset, RemoteFile
from backprop.errors import InputError
from backprop.paths import PROJECT_ROOT, datasets_dir
from studio import data_files, session


def npz_bytes(**arrays):
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def idx_files(n_train=30, n_test=10, gz=True, names=None):
    """Four tiny IDX files (4x4 images, labels 0..2) as (file name, bytes) pairs."""
    rng = np.random.RandomState(0)
    names = names or {"train-images": "train-images-idx3-ubyte", "train-labels": "train-labels-idx1-ubyte",
                      "t10k-images": "t10k-images-idx3-ubyte", "t10k-labels": "t10k-labels-idx1-ubyte"}
    out = []
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.randint(0, 256, size=(n, 4, 4)).astype(np.uint8)
        labels = (np.arange(n) % 3).astype(np.uint8)
        for kind, body in (("images", struct.pack(">IIII", 2051, n, 4, 4) + images.tobytes()),
                           ("labels", struct.pack(">II", 2049, n) + labels.tobytes())):
            name = names[f"{split}-{kind}"]
            out.append((name + (".gz" if gz else ""), gzip.compress(body) if gz else body))
    return out


def upload_folders():
    folder = data_files.uploads_dir()
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def test_an_npz_upload_is_checked_then_kept_under_its_own_id():
    x = np.random.RandomState(0).randint(0, 256, size=(70, 8, 8)).astype(np.uint8)
    y = np.arange(70) % 2
    before = upload_folders()
    saved = data_files.save_upload([("my digits.npz", npz_bytes(x=x, y=y))], "pairs")
    assert saved.kind == "npz" and saved.class_names == ("0", "1") and saved.name == "pairs"
    assert saved.n_train + saved.n_test == 70
    assert data_files.UPLOAD_ID.fullmatch(saved.id)
    assert saved.path == datasets_dir() / "uploads" / saved.id / "my-digits.npz"
    assert data_files.resolve_upload(saved.id) == saved.path
    assert data_files.get_upload(saved.id) == saved

    # A bad file under the same name: the message names the file, nothing is kept or left over.
    with pytest.raises(InputError) as error:
        data_files.save_upload([("broken.npz", npz_bytes(x=x))], "pairs")
    assert error.value.field == "broken.npz"
    assert "has no array 'y'" in error.value.message
    assert upload_folders() == sorted([*before, saved.id])
    assert sorted(p.name for p in saved.path.parent.iterdir()) == ["my-digits.npz", "upload.json"]


def test_two_uploads_with_the_same_names_keep_both():
    """Two people uploading digits.npz as "digits": two ids, neither replaces the other."""
    rng = np.random.RandomState(2)
    first = data_files.save_upload([("digits.npz", npz_bytes(x=rng.rand(30, 4), y=np.arange(30) % 2))],
                                   "digits")
    second = data_files.save_upload([("digits.npz", npz_bytes(x=rng.rand(40, 4), y=np.arange(40) % 3))],
                                    "digits")
    assert first.id != second.id
    assert data_files.get_upload(first.id).class_names == ("0", "1")
    assert data_files.get_upload(second.id).class_names == ("0", "1", "2")
    listed = [upload.id for upload in data_files.list_uploads([first.id, second.id])]
    assert listed == [second.id, first.id]  # newest first
    assert data_files.list_uploads() == []  # outside a browser session nobody is listed anything


@pytest.mark.parametrize("text", ["../../etc", "/etc/passwd", "ABCDEF012345", "0123456789a", "0123456789abc",
                                  "0123456789ab/..", "0123456789a\x00", "", None, 12])
def test_an_upload_is_named_only_by_a_server_made_id_never_a_path(text):
    with pytest.raises(InputError) as error:
        data_files.resolve_upload(text)
    assert error.value.field == "upload" and "upload id" in error.value.message


def test_an_unknown_id_is_refused_clearly():
    with pytest.raises(InputError) as error:
        data_files.resolve_upload("0123456789ab")
    assert error.value.field == "upload" and "no uploaded data set 0123456789ab" in error.value.message


def test_one_class_or_bad_pixels_are_refused():
    x = np.full((20, 4), 0.5)
    before = upload_folders()
    with pytest.raises(InputError) as error:
        data_files.save_upload([("one.npz", npz_bytes(x=x, y=np.zeros(20, dtype=int)))], "one")
    assert "at least two classes" in error.value.message
    with pytest.raises(InputError) as error:
        data_files.save_upload([("big.npz", npz_bytes(x=x * 4, y=np.arange(20) % 2))], "big")
    assert error.value.field == "big.npz" and "[0, 1]" in error.value.message
    assert upload_folders() == before


def test_four_idx_files_under_common_names():
    kaggle_names = {"train-images": "train-images.idx3-ubyte", "train-labels": "train-labels.idx1-ubyte",
                    "t10k-images": "t10k-images.idx3-ubyte", "t10k-labels": "t10k-labels.idx1-ubyte"}
    saved = data_files.save_upload(idx_files(gz=False, names=kaggle_names), "tiny-idx")
    assert saved.kind == "idx" and saved.class_names == ("0", "1", "2")
    assert (saved.n_train, saved.n_test) == (30, 10)
    assert saved.path == datasets_dir() / "uploads" / saved.id

    files = idx_files()
    name, body = files[0]
    files[0] = (name, gzip.compress(gzip.decompress(body)[:-5]))  # a truncated train-images file
    before = upload_folders()
    with pytest.raises(InputError) as error:
        data_files.save_upload(files, "tiny-idx-2")
    assert error.value.field == "train-images-idx3-ubyte.gz"
    assert upload_folders() == before


@pytest.mark.parametrize("names, field, words", [
    ([], "upload", "choose a .npz"),
    (["a.npz", "b.npz"], "upload", "one .npz file on its own"),
    (["notes.txt"], "notes.txt", "neither a .npz"),
    (["train-images-idx3-ubyte"], "upload", "train-labels-idx1-ubyte"),
    (["train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte",
      "t10k-labels-idx1-ubyte"], "upload", "all four plain"),
])
def test_what_was_uploaded_is_named_when_it_is_not_a_data_set(names, field, words):
    with pytest.raises(InputError) as error:
        data_files.upload_kind(names)
    assert error.value.field == field and words in error.value.message


def test_a_name_is_needed_and_made_safe():
    assert data_files.folder_name(" my data/../x ") == "my-data-..-x"
    with pytest.raises(InputError) as error:
        data_files.folder_name(" /// ")
    assert error.value.field == "name"


def test_the_training_set_up_follows_the_upload():
    upload = data_files.Upload(id="0123456789ab", name="x", kind="idx", file="", class_names=("0", "1", "2"),
                               n_train=30, n_test=10, saved_at="2026-01-01T00:00:00+00:00")
    config = dataclasses.replace(preset("tutorial"), subset=300)
    every = data_files.training_config(config, upload, None)
    assert (every.dataset, every.upload, every.data_path, every.digits, every.layers) == (
        "idx", upload.id, None, None, [196, 3])  # by id: a link can carry it, never the path
    assert every.subset is None  # 300 is more than the 30 images there are
    pair = data_files.training_config(config, upload, (2, 0))
    assert pair.digits == (2, 0) and pair.layers == [196, 1]


# -- downloads -------------------------------------------------------------------------------------
FILES = {"a.bin": bytes(range(256)) * 600, "b.bin": b"\x01" * 50_000}


@pytest.fixture(scope="module")
def server(serve_http, files_handler):
    with serve_http(files_handler(FILES)) as url:
        yield url


def toy_dataset(monkeypatch, mirror):
    spec = RemoteDataset(name="toy", folder="toy", description="two test files", credit="test, CC0",
                         mirrors=(mirror,), files=tuple(
                             RemoteFile(name, hashlib.sha256(body).hexdigest(), len(body))
                             for name, body in FILES.items()))
    monkeypatch.setattr(data_files, "REGISTRY", {"toy": spec})
    monkeypatch.setitem(REGISTRY, "toy", spec)
    shutil.rmtree(datasets_dir() / "toy", ignore_errors=True)


def test_progress_covers_every_file_of_a_download(monkeypatch, server, tmp_path):
    from backprop.data import download

    toy_dataset(monkeypatch, f"{server}/good/")
    shown = []
    progress = data_files.DownloadProgress("toy", lambda fraction, text: shown.append((fraction, text)))
    download("toy", dest=tmp_path, progress=progress, log=progress.log)
    fractions = [fraction for fraction, _ in shown]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    assert any("a.bin (file 1 of 2)" in text for _, text in shown)
    assert shown[-1][1].startswith("b.bin (file 2 of 2)")
    assert len(shown) < 250  # redrawn per half percent, not per block


@pytest.fixture
def data_page(use_studio):
    return use_studio(session.Studio(config=dataclasses.replace(preset("tutorial"), subset=300)))


@pytest.fixture
def open_data_page(open_page):
    return lambda: open_page("pages/data.py")


def test_data_page_downloads_and_then_lists_the_set_as_present(monkeypatch, server, data_page,
                                                               open_data_page):
    toy_dataset(monkeypatch, f"{server}/good/")
    at = open_data_page()
    assert "mnist 5 vs 8, subset 300" in [header.value for header in at.subheader]
    at.button(key="data_download_toy").click().run()
    assert not at.exception
    assert "toy is downloaded and verified" in at.success[0].value
    assert all((datasets_dir() / "toy" / name).read_bytes() == body for name, body in FILES.items())
    at.run()
    assert "Downloaded" in " ".join(m.value for m in at.markdown)


def test_data_page_names_every_failed_mirror(monkeypatch, server, data_page, open_data_page):
    toy_dataset(monkeypatch, f"{server}/missing/")
    at = open_data_page()
    at.button(key="data_download_toy").click().run()
    assert not at.exception
    message = at.error[0].value
    assert "every mirror failed" in message and f"{server}/missing/a.bin" in message and "404" in message
    assert not (datasets_dir() / "toy" / "a.bin").exists()


def test_data_page_puts_an_upload_into_the_set_up(data_page):
    x = np.random.RandomState(1).rand(50, 16)
    saved = data_files.save_upload([("squares.npz", npz_bytes(x=x, y=np.arange(50) % 4))], "squares")
    at = AppTest.from_file(str(PROJECT_ROOT / "pages/data.py"), default_timeout=60)
    at.session_state["data_upload"] = saved
    at.run()
    assert "classes 0, 1, 2, 3" in at.info[0].value and saved.id in at.info[0].value
    at.radio(key="data_upload_classes").set_value("Two classes").run()
    at.selectbox(key="data_upload_second").set_value("3").run()
    at.button(key="data_upload_use").click().run()
    assert not at.exception
    # the set-up names the upload by its id (a link can carry that), never by its path
    assert (data_page.config.dataset, data_page.config.upload, data_page.config.data_path) == (
        "npz", saved.id, None)
    assert data_page.config.digits == (0, 3) and data_page.config.layers[-1] == 1
    assert "press **Train**" in at.success[-1].value


def test_data_page_offers_earlier_uploads_by_name_and_id(data_page, open_data_page):
    rng = np.random.RandomState(3)
    first = data_files.save_upload([("same.npz", npz_bytes(x=rng.rand(30, 4), y=np.arange(30) % 2))], "same")
    second = data_files.save_upload([("same.npz", npz_bytes(x=rng.rand(30, 4), y=np.arange(30) % 3))], "same")
    at = AppTest.from_file(str(PROJECT_ROOT / "pages/data.py"), default_timeout=60)
    at.session_state[data_files.KNOWN_UPLOADS] = [first.id, second.id]  # as if this session uploaded them
    at.run()
    earlier = at.selectbox(key="data_upload_earlier")
    labels = " ".join(earlier.options)  # newest first, both named "same", told apart by their ids
    assert labels.index(second.id) < labels.index(first.id) and labels.count("same (npz") == 2
    earlier.set_value(first.id).run()
    assert not at.exception
    assert first.id in at.info[0].value and "classes 0, 1." in at.info[0].value
    at.selectbox(key="data_upload_earlier").set_value(second.id).run()
    assert second.id in at.info[0].value and "classes 0, 1, 2." in at.info[0].value


def upload_through_the_page(name="mine"):
    """A browser session that uploads an .npz file on the Data page: (its AppTest, the upload's id)."""
    x = np.random.RandomState(4).rand(40, 9)
    at = AppTest.from_file(str(PROJECT_ROOT / "pages/data.py"), default_timeout=60)
    at.run()
    at.file_uploader(key="data_upload_files").set_value((f"{name}.npz", npz_bytes(x=x, y=np.arange(40) % 2),
                                                         "application/zip")).run()
    at.button(key="data_upload_save").click().run()
    assert not at.exception and "Saved" in at.success[0].value
    return at, at.session_state["data_upload_saved"]


def earlier_uploads(at):
    """The labels the Data page offers under "Or use a data set you uploaded earlier" (none: [])."""
    return [option for box in at.selectbox if box.key == "data_upload_earlier" for option in box.options]


def test_a_visitor_is_listed_only_the_uploads_their_session_made_or_a_link_names(data_page):
    """Issue 21 item 7: uploads were listed to every visitor. The id is a capability: the session that
    uploaded lists it, another session does not, and a link carrying `upload=<id>` still works."""
    mine, upload_id = upload_through_the_page("private")
    told = mine.success[0].value
    mine.run()
    assert any(upload_id in option for option in earlier_uploads(mine))

    other = AppTest.from_file(str(PROJECT_ROOT / "pages/data.py"), default_timeout=60)
    other.run()
    assert not any(upload_id in option for option in earlier_uploads(other))
    assert upload_id not in [u.id for u in data_files.list_uploads()]  # outside any session: none
    assert "upload=" + upload_id in told  # the key to keep, told once saved

    linked = AppTest.from_file(str(PROJECT_ROOT / "pages/data.py"), default_timeout=60)
    linked.query_params["upload"] = upload_id
    linked.run()
    linked.selectbox(key="data_upload_earlier").set_value(upload_id).run()
    assert not linked.exception and upload_id in linked.info[0].value
    linked.query_params.pop("upload")
    linked.run()  # the link was followed once: this session keeps it
    assert any(upload_id in option for option in earlier_uploads(linked))


def test_the_data_page_shows_what_the_studio_keeps_on_disk(data_page, open_data_page):
    at = open_data_page()
    assert "Disk" in [header.value for header in at.header]
    kinds = [row["kind"] for row in at.dataframe[-1].value.to_dict("records")]
    assert kinds[:6] == ["checkpoints", "run store", "uploads", "sweeps", "cache", "data sets"]
    assert any("BACKPROP_DISK_BUDGET" in caption.value for caption in at.caption)
