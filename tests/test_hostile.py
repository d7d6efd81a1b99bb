"""Hostile input (issue 11): the bombs of the issue, built on the fly, driven through the engine API,
the CLI and the pages (AppTest), the slow ones in a process limited to 3 GB of address space. Each
must end in a clear message naming the field and the memory budget, with nothing allocated first."""

import gzip
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from backprop.budget import DEFAULT_BUDGET, memory_budget
from backprop.checkpoint import load_checkpoint, save_checkpoint
from backprop.config import TrainConfig
from backprop.data import load_task
from backprop.data.idx import clear_memory_cache
from backprop.errors import InputError
from backprop.network import Network

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE = 3 * 10**9  # the limit for a process facing the bombs


# -- the bombs ------------------------------------------------------------------------------------
def npy_header(shape, descr):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def zip_of_zeros(members, path, hold=None):
    """An .npz whose members (name -> (shape, descr)) are all zeros, deflated. `hold` caps the
    bytes of data actually written (a member declaring more than it holds); None writes them all."""
    zeros = bytes(1 << 24)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, (shape, descr) in members.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                member.write(npy_header(shape, descr))
                left = int(np.prod(shape)) * np.dtype(descr).itemsize
                left = left if hold is None else min(left, hold)
                while left:
                    member.write(zeros[:min(left, len(zeros))])
                    left -= min(left, len(zeros))
    return path


def huge_network_checkpoint(path):
    """The issue's 1,330-byte checkpoint: meta describes [784, 20000, 20000, 1], no arrays."""
    meta = {"format": "backprop-studio-checkpoint", "version": 1, "saved_at": "2026-01-01T00:00:00+00:00",
            "network": {"sizes": [784, 20000, 20000, 1], "activation": "sigmoid", "output": "sigmoid",
                        "init": "seed", "seed": 1, "dtype": "float64"}, "config": None, "history": None}
    np.savez(path, meta=np.array(json.dumps(meta)))
    return path


def huge_w1_checkpoint(path):
    """A real checkpoint of [784, 196, 1] whose W1 member declares 500,000 x 1024 float64 (4.1 GB)
    over a few MB of deflated zeros (the issue's 3.98 MB checkpoint)."""
    network = Network([784, 196, 1])
    good = save_checkpoint(path.with_name("good-" + path.name), network, TrainConfig())
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            if info.filename != "W1.npy":
                bomb.writestr(info.filename, source.read(info))
        with bomb.open("W1.npy", "w", force_zip64=True) as member:
            member.write(npy_header((500_000, 1024), "<f8"))
            member.write(bytes(4 << 20))
    return path


def idx_gz(path, magic, dims, body, promised_length=None):
    """A gzip IDX file; `promised_length` forges the gzip trailer's length (mod 2**32)."""
    data = gzip.compress(struct.pack(f">{1 + len(dims)}I", magic, *dims) + body, compresslevel=1)
    if promised_length is not None:
        data = data[:-4] + struct.pack("<I", promised_length % 2**32)
    path.write_bytes(data)


def idx_folder(folder, n_train=(5_000_000, None), extra=0):
    """Four .gz IDX files of 28x28 images. The train images header declares n_train[0] images
    (with a forged trailer), while the file holds n_train[1] (None: 10) images and `extra` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    held = 10 if n_train[1] is None else n_train[1]
    declared = n_train[0]
    idx_gz(folder / "train-images-idx3-ubyte.gz", 2051, (declared, 28, 28), bytes(held * 784 + extra),
           promised_length=16 + declared * 784)
    idx_gz(folder / "train-labels-idx1-ubyte.gz", 2049, (declared,), bytes(held),
           promised_length=8 + declared)
    idx_gz(folder / "t10k-images-idx3-ubyte.gz", 2051, (2, 28, 28), bytes(2 * 784))
    idx_gz(folder / "t10k-labels-idx1-ubyte.gz", 2049, (2,), bytes([0, 1]))
    return folder


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """Every bomb of the issue, as files (built once: the 640,000 x 784 one takes a second or two)."""
    folder = tmp_path_factory.mktemp("bombs")
    return {
        # 489 KB: x of 640,000 x 784 uint8 zeros (502 MB as declared; 4 GB once scaled to float64)
        "zeros_npz": zip_of_zeros({"x": ((640_000, 784), "|u1"), "y": ((640_000,), "|u1")},
                                  folder / "zeros.npz"),
        # x declares 5,100,000 x 784 float64 (32 GB: the "29.8 GiB") over 4 MB of data
        "declared_npz": zip_of_zeros({"x": ((5_100_000, 784), "<f8"), "y": ((5_100_000,), "|u1")},
                                     folder / "declared.npz", hold=4 << 20),
        "huge_network": huge_network_checkpoint(folder / "huge-network.npz"),
        "huge_w1": huge_w1_checkpoint(folder / "huge-w1.npz"),
        "idx_huge_header": idx_folder(folder / "idx-huge-header"),
        "idx_overlong": idx_folder(folder / "idx-overlong", n_train=(10, 10), extra=64 << 20),
        "idx_empty": idx_folder(folder / "idx-empty", n_train=(0, 0)),
    }


# -- the engine API, in this process -----------------------------------------------------------------
def refusal(call, *words, field=None):
    with pytest.raises(InputError) as caught:
        call()
    if field is not None:
        assert field in caught.value.field
    for word in words:
        assert word in str(caught.value), str(caught.value)
    return caught.value


def test_the_budget_has_a_documented_default_that_fits_four_sessions_on_24_gb(monkeypatch):
    monkeypatch.delenv("BACKPROP_MEMORY_BUDGET", raising=False)
    assert memory_budget() == DEFAULT_BUDGET == 3 * 10**9
    assert 4 * DEFAULT_BUDGET <= 24e9 / 2  # BACKPROP_MAX_TRAINING_THREADS sessions, half the machine
    assert "BACKPROP_MEMORY_BUDGET" in (ROOT / "README.md").read_text()


def test_a_zip_of_zeros_is_refused_from_its_headers(bombs):
    assert bombs["zeros_npz"].stat().st_size < 600_000
    refusal(lambda: load_task("npz", digits=None, path=str(bombs["zeros_npz"])),
            "(640000, 784)", "BACKPROP_MEMORY_BUDGET", field="zeros.npz")


def test_an_npz_member_declaring_more_than_it_holds_is_refused(bombs):
    refusal(lambda: load_task("npz", digits=None, path=str(bombs["declared_npz"])),
            "'x'", "declares", field="declared.npz")


def test_a_tiny_checkpoint_naming_a_huge_network_is_refused(bombs):
    assert bombs["huge_network"].stat().st_size < 2000
    refusal(lambda: load_checkpoint(bombs["huge_network"]), "[784, 20000, 20000, 1]",
            "BACKPROP_MEMORY_BUDGET", field="checkpoint")


def test_a_checkpoint_whose_w1_declares_4_gb_is_refused(bombs):
    assert bombs["huge_w1"].stat().st_size < 5_000_000
    refusal(lambda: load_checkpoint(bombs["huge_w1"]), "W1", field="checkpoint")


def test_idx_header_dims_are_checked_before_parsing(bombs):
    clear_memory_cache()
    refusal(lambda: load_task("idx", digits=None, path=str(bombs["idx_huge_header"])),
            "5,000,000 images", "BACKPROP_MEMORY_BUDGET", field="train-images-idx3-ubyte.gz")


def test_a_gzip_idx_file_is_never_decompressed_past_its_header(bombs):
    """The trailer is forged to match the header; 64 MB more zeros follow the 10 images."""
    clear_memory_cache()
    refusal(lambda: load_task("idx", digits=None, path=str(bombs["idx_overlong"])),
            "decompresses to more than", field="train-images-idx3-ubyte.gz")


def test_an_idx_folder_with_no_images_is_named_as_such(bombs):
    clear_memory_cache()
    error = refusal(lambda: load_task("idx", digits=None, path=str(bombs["idx_empty"])), "0 images",
                    field="train-images-idx3-ubyte.gz")
    assert "layer" not in error.message


def test_the_budget_is_a_setting(monkeypatch, tmp_path):
    """A small budget refuses a data set that the default accepts, naming the variable."""
    path = zip_of_zeros({"x": ((20_000, 784), "|u1"), "y": ((20_000,), "|u1")}, tmp_path / "mid.npz")
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", "64MB")
    refusal(lambda: load_task("npz", digits=None, path=str(path)), "64.0 MB", "BACKPROP_MEMORY_BUDGET")
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", "lots")
    refusal(lambda: load_task("npz", digits=None, path=str(path)), "'lots'", field="BACKPROP_MEMORY_BUDGET")


# -- the first-import race ----------------------------------------------------------------------------
PAGE_LIBRARIES = textwrap.dedent("""
    import ast, json, sys
    from pathlib import Path
    root = Path(sys.argv[1])

    def imports(path):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                yield node.module

    # app.py's own imports, as `streamlit run app.py` runs them before the first page
    for name in imports(root / "app.py"):
        __import__(name)
    before = set(sys.modules)
    # what the pages import (at the top or in functions), and what Streamlit and plotly import
    # lazily while a page runs (st.dataframe, a figure's JSON)
    for path in [*sorted((root / "pages").glob("*.py")), *sorted((root / "studio").glob("*.py"))]:
        for name in imports(path):
            try:
                __import__(name)
            except Exception:  # a component that registers itself only inside a running server
                pass
    from streamlit import dataframe_util
    import plotly.graph_objects as go
    dataframe_util.convert_anything_to_arrow_bytes([{"a": 1, "b": "x"}])
    go.Figure(go.Scatter(x=[1], y=[2])).to_json()
    packages_before = {name.split(".")[0] for name in before}
    first_imported_late = {name.split(".")[0] for name in set(sys.modules) - before} - packages_before
    print(json.dumps(sorted(name for name in first_imported_late
                            if not name.startswith("_") and name not in sys.stdlib_module_names
                            and name not in ("backprop", "studio"))))
""")


def test_app_imports_the_pages_libraries_before_any_page_runs():
    """Issue 11's race: pandas first imported by one tab's Compare page while other tabs' threads
    look it up in sys.modules half-initialised. Every third-party library a page uses must already
    be imported by app.py (each run of it imports them before it runs a page)."""
    result = subprocess.run([sys.executable, "-c", PAGE_LIBRARIES, str(ROOT)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# -- the same bombs in a process limited to 3 GB of address space ------------------------------------
def limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_limited(args, home, timeout=300):
    """Run `python args...` in a process that cannot map more than 3 GB."""
    env = {**os.environ, "BACKPROP_STUDIO_HOME": str(home), "MALLOC_ARENA_MAX": "2",
           "OPENBLAS_NUM_THREADS": "1", "BACKPROP_ENGINE_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("BACKPROP_MEMORY_BUDGET", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          preexec_fn=limit_address_space, timeout=timeout)


@pytest.fixture(scope="module")
def limited_home(tmp_path_factory):
    """A studio home with MNIST already parsed and cached (the Train page loads it)."""
    home = tmp_path_factory.mktemp("limited-home")
    setup = "from backprop.data import load_task; load_task(subset=300)"
    result = subprocess.run([sys.executable, "-c", setup], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "BACKPROP_STUDIO_HOME": str(home)}, timeout=300)
    assert result.returncode == 0, result.stderr
    return home


ENGINE_DRIVER = textwrap.dedent("""
    import json, sys
    from backprop.checkpoint import load_checkpoint
    from backprop.data import load_task
    from backprop.errors import InputError
    bombs = json.loads(sys.argv[1])
    out = {}
    for name, path in bombs.items():
        try:
            if name in ("huge_network", "huge_w1"):
                load_checkpoint(path)
            else:
                load_task("npz" if path.endswith(".npz") else "idx", digits=None, path=path)
            out[name] = "loaded"
        except InputError as error:
            out[name] = str(error)
    import numpy as np
    np.ones((1000, 1000)).sum()  # and the process still works
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_every_bomb_through_the_engine_under_3_gb(bombs, limited_home):
    result = run_limited(["-c", ENGINE_DRIVER, json.dumps({k: str(v) for k, v in bombs.items()})],
                         limited_home)
    assert result.returncode == 0, result.stderr[-3000:]
    messages = json.loads(result.stdout.strip().splitlines()[-1])
    assert "BACKPROP_MEMORY_BUDGET" in messages["zeros_npz"]
    assert "declares" in messages["declared_npz"]
    assert "[784, 20000, 20000, 1]" in messages["huge_network"]
    assert "W1" in messages["huge_w1"]
    assert "5,000,000 images" in messages["idx_huge_header"]
    assert "decompresses to more than" in messages["idx_overlong"]
    assert "0 images" in messages["idx_empty"]


@pytest.mark.slow
@pytest.mark.parametrize("bomb, dataset, words", [
    ("zeros_npz", "npz", ["(640000, 784)", "BACKPROP_MEMORY_BUDGET"]),
    ("declared_npz", "npz", ["declares"]),
    ("idx_huge_header", "idx", ["5,000,000 images", "BACKPROP_MEMORY_BUDGET"]),
    ("idx_overlong", "idx", ["decompresses to more than"]),
    ("idx_empty", "idx", ["0 images"]),
])
def test_every_data_bomb_through_the_cli_under_3_gb(bombs, limited_home, bomb, dataset, words):
    result = run_limited(["-m", "backprop", "train", "--dataset", dataset, "--data-path", str(bombs[bomb]),
                          "--classes", "all", "--no-record", "--iterations", "1"], limited_home)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


PAGES_DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from streamlit.testing.v1 import AppTest
    bombs = json.loads(sys.argv[1])
    app = str(Path.cwd() / "app.py")
    out = {}

    def shown(at):
        return {"errors": [e.value for e in at.error], "exceptions": [e.value for e in at.exception]}

    # the Data page: upload the .npz bombs, then a good file (the server keeps serving)
    at = AppTest.from_file(str(Path.cwd() / "pages" / "data.py"), default_timeout=120)
    at.query_params["subset"] = "300"
    at.run()
    for name in ("zeros_npz", "declared_npz"):
        body = Path(bombs[name]).read_bytes()
        at.file_uploader(key="data_upload_files").set_value((f"{name}.npz", body, "application/zip")).run()
        at.button(key="data_upload_save").click().run()
        out["data " + name] = shown(at)
    import io
    import numpy as np
    good = io.BytesIO()
    np.savez(good, x=np.random.RandomState(0).rand(70, 16), y=np.arange(70) % 2)
    uploader = at.file_uploader(key="data_upload_files")
    uploader.set_value(("good.npz", good.getvalue(), "application/zip")).run()
    at.button(key="data_upload_save").click().run()
    out["data good"] = {**shown(at), "success": [s.value for s in at.success]}

    # the Train page: upload the checkpoint bombs to continue from them
    at = AppTest.from_file(app, default_timeout=120)
    at.query_params["subset"] = "300"
    at.run()
    for name in ("huge_network", "huge_w1"):
        body = Path(bombs[name]).read_bytes()
        at.file_uploader(key="checkpoint_upload").set_value((f"{name}.npz", body, "application/zip")).run()
        out["train " + name] = {**shown(at), "markdown": [m.value for m in at.markdown]}
    at.file_uploader(key="checkpoint_upload").set_value(None).run()
    next(b for b in at.button if b.label == "Step").click().run()
    out["train after"] = {**shown(at), "status": [m.value for m in at.markdown if "iteration" in m.value]}
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_every_upload_bomb_through_the_pages_under_3_gb(bombs, limited_home):
    result = run_limited(["-c", PAGES_DRIVER, json.dumps({k: str(v) for k, v in bombs.items()})],
                         limited_home, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    pages = json.loads(result.stdout.strip().splitlines()[-1])
    for name, words in (("data zeros_npz", ["BACKPROP_MEMORY_BUDGET"]), ("data declared_npz", ["declares"])):
        assert pages[name]["exceptions"] == [], pages[name]
        assert any(all(word in error for word in words) for error in pages[name]["errors"]), pages[name]
    good = pages["data good"]
    assert good["exceptions"] == [] and "Saved **good**" in " ".join(good["success"]), good
    for name, words in (("train huge_network", ["[784, 20000, 20000, 1]", "BACKPROP_MEMORY_BUDGET"]),
                        ("train huge_w1", ["W1"])):
        assert pages[name]["exceptions"] == [], pages[name]
        shown = " ".join(pages[name]["errors"] + pages[name]["markdown"]).replace("\\", "")  # escapes
        assert all(word in shown for word in words), pages[name]
    after = pages["train after"]
    assert after["exceptions"] == [] and any("iteration 1" in text for text in after["status"]), after


# -- an empty, read-only studio folder ----------------------------------------------------------------
READ_ONLY_DRIVER = textwrap.dedent("""
    import io, json
    from pathlib import Path
    import numpy as np
    from streamlit.testing.v1 import AppTest
    out = {}
    at = AppTest.from_file(str(Path.cwd() / "app.py"), default_timeout=120)
    at.query_params["subset"] = "300"
    at.run()
    next(b for b in at.button if b.label == "Step").click().run()
    out["train"] = {"exceptions": [e.value for e in at.exception],
                    "status": [m.value for m in at.markdown if "iteration" in m.value]}
    at = AppTest.from_file(str(Path.cwd() / "pages" / "data.py"), default_timeout=120)
    at.run()
    good = io.BytesIO()
    np.savez(good, x=np.random.RandomState(0).rand(70, 16), y=np.arange(70) % 2)
    upload = ("good.npz", good.getvalue(), "application/zip")
    at.file_uploader(key="data_upload_files").set_value(upload).run()
    at.button(key="data_upload_save").click().run()
    out["data"] = {"exceptions": [e.value for e in at.exception], "errors": [e.value for e in at.error]}
    print(json.dumps(out))
""")


def without_root_powers():
    """The command prefix that makes a read-only folder read-only for this user too (root
    ignores permissions unless it drops CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all"]


@pytest.mark.slow
def test_an_empty_read_only_studio_folder_gives_messages_not_tracebacks(tmp_path):
    home = tmp_path / "read-only"
    home.mkdir()
    home.chmod(0o555)
    env = {**os.environ, "BACKPROP_STUDIO_HOME": str(home), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([*without_root_powers(), sys.executable, "-c", READ_ONLY_DRIVER], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    home.chmod(0o755)
    assert result.returncode == 0, result.stderr[-3000:]
    pages = json.loads(result.stdout.strip().splitlines()[-1])
    assert pages["train"]["exceptions"] == [], pages
    assert any("iteration 1" in text for text in pages["train"]["status"]), pages
    assert pages["data"]["exceptions"] == [], pages
    assert any("cannot keep uploads" in error for error in pages["data"]["errors"]), pages
    assert list(home.iterdir()) == []
