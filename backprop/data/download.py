"""Download datasets that are too big (or not ours) to ship, from a list of mirrors, verified.

Each file is streamed into ``<name>.part``, checked for size and SHA-256 (and MD5 where the
publisher gives one), and only then renamed into place, so the final name always holds a verified
file. A failing mirror is recorded with its reason and the next one is tried.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backprop.errors import InputError
from backprop.paths import datasets_dir

from .idx import emnist_names, sha256_file, write_atomic

Progress = Callable[[int, "int | None"], None]
EMNIST_MANIFEST = "SHA256SUMS"
EMNIST_VARIANTS = ("digits", "mnist", "letters")
CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str
    size: int | None = None
    md5: str | None = None


@dataclass(frozen=True)
class RemoteDataset:
    name: str
    folder: str  # under datasets_dir()
    description: str
    credit: str
    mirrors: tuple[str, ...]  # base URLs; a file's URL is mirror + file name
    files: tuple[RemoteFile, ...]
    unpack: Callable[[Path], None] | None = field(default=None, compare=False)
    unpacked: Callable[[Path], list[str]] | None = field(default=None, compare=False)


class DownloadError(RuntimeError):
    """Every mirror failed for one file; ``attempts`` holds (url, reason) for each."""

    def __init__(self, file_name: str, attempts: list[tuple[str, str]]):
        self.file_name = file_name
        self.attempts = attempts
        lines = "\n".join(f"  - {url}: {reason}" for url, reason in attempts) or "  (no mirrors given)"
        super().__init__(f"could not download {file_name}; every mirror failed:\n{lines}")


def _unpack_emnist(folder: Path) -> None:
    """Pull the gzip IDX files python-mnist reads out of NIST's zip, then drop the 560 MB zip."""
    archive = folder / "gzip.zip"
    wanted = {f"{name}.gz" for v in EMNIST_VARIANTS for name in emnist_names(v).values()}
    sums = []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = Path(info.filename).name
            if name not in wanted:
                continue
            part = folder / f"{name}.part"
            digest = hashlib.sha256()
            with zf.open(info) as src, open(part, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
            os.replace(part, folder / name)
            sums.append(f"{digest.hexdigest()}  {name}\n")
    missing = wanted - {line.split()[1] for line in sums}
    if missing:
        raise DownloadError("gzip.zip", [(str(archive), f"archive lacks {', '.join(sorted(missing))}")])
    write_atomic(folder / EMNIST_MANIFEST, "".join(sorted(sums, key=lambda s: s.split()[1])).encode())
    archive.unlink()


def _emnist_unpacked(folder: Path) -> list[str]:
    manifest = folder / EMNIST_MANIFEST
    return manifest.read_text().split()[1::2] if manifest.is_file() else []


REGISTRY: dict[str, RemoteDataset] = {
    "fashion-mnist": RemoteDataset(
        name="fashion-mnist",
        folder="fashion-mnist",
        description="Zalando article images: 60,000 + 10,000 greyscale 28x28, 10 clothing classes",
        credit="Han Xiao, Kashif Rasul, Roland Vollgraf (Zalando Research), MIT license",
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        files=(
            RemoteFile(
                "train-images-idx3-ubyte.gz",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                26421880,
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            RemoteFile(
                "train-labels-idx1-ubyte.gz",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                29515,
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            RemoteFile(
                "t10k-images-idx3-ubyte.gz",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                4422102,
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            RemoteFile(
                "t10k-labels-idx1-ubyte.gz",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                5148,
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ),
    ),
    "emnist": RemoteDataset(
        name="emnist",
        folder="emnist",
        description="NIST's EMNIST (one ~560 MB zip); unpacks the digits, mnist and letters splits "
        "for load_task('emnist-digits' | 'emnist-mnist' | 'emnist-letters')",
        credit="Gregory Cohen, Saeed Afshar, Jonathan Tapson, Andre van Schaik (2017), NIST",
        mirrors=(
            "https://biometrics.nist.gov/cs_links/EMNIST/",
            "http://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/",
        ),
        files=(
            RemoteFile(
                "gzip.zip",
                "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
                None,
                "58c8d27c78d21e728a6bc7b3cc06412e",
            ),
        ),
        unpack=_unpack_emnist,
        unpacked=_emnist_unpacked,
    ),
}


def is_complete(spec: RemoteDataset, folder: Path, verify: bool = True) -> bool:
    """Whether ``folder`` already holds the dataset (checksums checked only when ``verify``)."""
    if spec.unpacked is not None:
        names = spec.unpacked(folder)
        if not names:
            return False
        if not verify:
            return all((folder / n).is_file() for n in names)
        from .idx import read_manifest

        sums = read_manifest(folder / EMNIST_MANIFEST)
        return all((folder / n).is_file() and sha256_file(folder / n) == sums[n] for n in names)
    if not verify:
        return all((folder / f.name).is_file() for f in spec.files)
    return all((folder / f.name).is_file() and _problem_with(folder / f.name, f) is None for f in spec.files)


def download(
    name: str,
    dest: str | Path | None = None,
    mirrors: list[str] | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Fetch dataset ``name`` into ``dest/<folder>`` (default ``datasets_dir()``); return that folder.

    ``mirrors`` replaces the registry's base URLs (tests, or a local copy). ``progress(done, total)``
    is called while each file streams (``total`` is None when the server does not say). ``log`` gets
    one line per event worth telling a person (skips, failed mirrors).
    """
    if name not in REGISTRY:
        raise InputError(
            "name", f"{name!r} is not a downloadable dataset; choose one of {', '.join(REGISTRY)}"
        )
    spec = REGISTRY[name]
    folder = Path(dest) if dest is not None else datasets_dir()
    folder = folder / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    say = log or (lambda line: None)
    if spec.unpacked is not None and is_complete(spec, folder):
        say(f"{name}: already downloaded and verified in {folder}")
        return folder
    for remote in spec.files:
        final = folder / remote.name
        if final.exists():
            problem = _problem_with(final, remote)
            if problem is None:
                say(f"{remote.name}: already present and verified, skipped")
                continue
            say(f"{remote.name}: present but {problem}; downloading it again")
            final.unlink()
        _fetch(remote, mirrors if mirrors is not None else spec.mirrors, final, progress, timeout, say)
    if spec.unpack is not None:
        say(f"{name}: unpacking")
        spec.unpack(folder)
    return folder


def _fetch(remote: RemoteFile, mirrors, final: Path, progress, timeout: float, say) -> None:
    attempts = []
    part = final.with_name(final.name + ".part")
    for base in mirrors:
        url = base if base.endswith(remote.name) else base.rstrip("/") + "/" + remote.name
        say(f"{remote.name}: trying {url}")
        try:
            size, sha256, md5 = _stream(url, part, progress, timeout)
            problem = _mismatch(remote, size, sha256, md5)
            if problem is None:
                os.replace(part, final)
                return
            reason = problem
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            reason = f"cannot connect: {exc.reason}"
        except (TimeoutError, http.client.HTTPException, OSError) as exc:
            reason = f"transfer failed: {type(exc).__name__}: {exc}"
        finally:
            part.unlink(missing_ok=True)
        say(f"{remote.name}: {url} failed: {reason}")
        attempts.append((url, reason))
    raise DownloadError(remote.name, attempts)


def _stream(url: str, part: Path, progress, timeout: float) -> tuple[int, str, str]:
    """Copy ``url`` into ``part``, hashing on the way, and insist on the announced length."""
    request = urllib.request.Request(url, headers={"User-Agent": "backprop-studio"})
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    done = 0
    with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if progress:
            progress(0, total)
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)
            sha256.update(block)
            md5.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    if total is not None and done != total:
        raise OSError(f"truncated: received {done} of {total} bytes")
    return done, sha256.hexdigest(), md5.hexdigest()


def _mismatch(remote: RemoteFile, size: int, sha256: str, md5: str) -> str | None:
    if remote.size is not None and size != remote.size:
        return f"wrong size: {size} bytes, expected {remote.size}"
    if sha256 != remote.sha256:
        return f"SHA-256 mismatch: got {sha256}, expected {remote.sha256}"
    if remote.md5 is not None and md5 != remote.md5:
        return f"MD5 mismatch: got {md5}, expected {remote.md5}"
    return None


def _problem_with(path: Path, remote: RemoteFile) -> str | None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"wrong size: {size} bytes, expected {remote.size}"
    digest = sha256_file(path)
    return None if digest == remote.sha256 else f"SHA-256 mismatch: got {digest}, expected {remote.sha256}"
