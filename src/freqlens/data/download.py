"""Downloads from the official sources, with checksums, resume and atomic placement.

:func:`download_url` streams to ``dest + ".part"``, resumes a partial ``.part`` with an HTTP ``Range``
request, verifies the checksum and only then renames the file into place; a checksum mismatch raises
:class:`~freqlens.errors.ChecksumError` and leaves no file behind.

Mirrors are module-level (:data:`MIRRORS`) and can be overridden with environment variables
(``FREQLENS_MNIST_MIRROR``, ``FREQLENS_CIFAR10_MIRROR``: one base URL or several, comma separated).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from freqlens.errors import ChecksumError, DataError

#: Base URLs, tried in order. Override in code, or with the environment variables of :data:`MIRROR_ENV`.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}
MIRROR_ENV = {"mnist": "FREQLENS_MNIST_MIRROR", "cifar10": "FREQLENS_CIFAR10_MIRROR"}

#: Official MNIST files: name -> (MD5 of the .gz as published, MD5 of its decompressed content).
#: A file is accepted when either matches, so mirrors that re-compressed the files are fine too.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}
MNIST_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: The CIFAR-10 python version: (file name, MD5).
CIFAR10_ARCHIVE = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
CIFAR10_FOLDER = "cifar-10-batches-py"

_CHUNK = 1 << 16
_USER_AGENT = "freqlens (+https://github.com/freqlens)"

Verifier = Callable[[Path], "str | None"]  # returns None when fine, else what is wrong


def mirrors(name: str) -> list[str]:
    """Base URLs for dataset ``name``: the environment override, else :data:`MIRRORS`."""
    env = os.environ.get(MIRROR_ENV.get(name, ""), "").strip()
    bases = [b.strip() for b in env.split(",") if b.strip()] if env else list(MIRRORS[name])
    return [b if b.endswith("/") else b + "/" for b in bases]


def file_hashes(path: str | os.PathLike, algorithms: Iterable[str] = ("md5", "sha256")) -> dict[str, str]:
    """Hex digests of a file, computed in one streaming pass.

    Args:
        path: the file.
        algorithms: :mod:`hashlib` algorithm names.

    Returns:
        Algorithm → hex digest.
    """
    hashers = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _checksum_problem(path: Path, md5: str | None, sha256: str | None, verify: Verifier | None) -> str | None:
    wanted = {a: v.lower() for a, v in (("md5", md5), ("sha256", sha256)) if v}
    if wanted:
        got = file_hashes(path, wanted)
        for algorithm, expected in wanted.items():
            if got[algorithm] != expected:
                return f"{algorithm} {got[algorithm]} differs from the expected {expected}"
    if verify is not None:
        return verify(path)
    return None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return None  # the range lies beyond the file: the .part is complete (or bogus)
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download {url}: {reason} (no network? copy the files by hand and pass "
            f"their folder with --data-dir)"
        ) from exc


def missing_files_error(what: str, root: Path, missing: str, holder: str) -> DataError:
    """The error of a built-in dataset (MNIST, CIFAR-10) whose files are not under ``root``, with the two
    ways out: ``download=True`` (``--download``) or ``--data-dir``.

    Args:
        what: what was looked for, e.g. ``"MNIST train files"``.
        root: the data folder searched.
        missing: the missing files, as shown.
        holder: what the folder given to ``--data-dir`` must hold.

    Returns:
        The :class:`~freqlens.errors.DataError` to raise.
    """
    return DataError(f"{what} not found in {root} (missing {missing}); pass download=True (--download) to fetch "
                     f"them, or point --data-dir at the folder that holds {holder}")


def download_url(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    resume: bool = True,
    progress: bool = False,
    timeout: float = 60.0,
    verify: Verifier | None = None,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    Streams into ``dest.part``; with ``resume`` an existing ``.part`` is continued with an HTTP Range
    request (a server that ignores it gets a fresh download). The checksum (``md5``, ``sha256`` and/or a
    ``verify(path) -> problem | None`` callable) is checked before ``dest.part`` is renamed to ``dest``;
    on a mismatch the ``.part`` is deleted and :class:`ChecksumError` raised. A ``dest`` that already
    exists and passes the checksum (or exists, when no checksum is given) is not downloaded again.
    Network and HTTP errors raise :class:`DataError` (a partial ``.part`` is kept for resuming).

    Args:
        url: the file's URL.
        dest: the destination file (parent folders are created).
        md5: the expected MD5 hex digest (``None``: not checked).
        sha256: the expected SHA-256 hex digest (``None``: not checked).
        resume: continue an existing ``dest.part`` (else it is discarded).
        progress: show a tqdm bar (stderr) in bytes.
        timeout: socket timeout in seconds.
        verify: ``verify(path) -> problem | None``, an extra check (``None``: none).

    Returns:
        ``dest``.

    Raises:
        ChecksumError: the downloaded file fails the checksum (it is deleted).
        DataError: a network or HTTP error, or an interrupted / incomplete download.
    """
    dest = Path(dest).expanduser()
    if dest.is_file() and _checksum_problem(dest, md5, sha256, verify) is None:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if not resume:
        _unlink(part)
    offset = part.stat().st_size if part.is_file() else 0

    response = _open(url, offset, timeout)
    if response is None:  # 416: nothing left to fetch; verify what we have, else start over
        if _checksum_problem(part, md5, sha256, verify) is None:
            os.replace(part, dest)
            return dest
        _unlink(part)
        offset = 0
        response = _open(url, 0, timeout)
    with response:
        status = getattr(response, "status", 200)
        content_range = response.headers.get("Content-Range", "")
        if offset and not (status == 206 and content_range.replace("=", " ").startswith(f"bytes {offset}-")):
            offset = 0  # the server ignored the Range request: it sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        try:
            with (
                open(part, "ab" if offset else "wb") as handle,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    file=sys.stderr,
                    desc=dest.name,
                    disable=not progress,
                    leave=False,
                    delay=0.5,
                ) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    handle.write(chunk)
                    bar.update(len(chunk))
                handle.flush()
                os.fsync(handle.fileno())
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise DataError(f"download of {url} interrupted ({exc}); run again to resume") from exc
    size = part.stat().st_size
    if total is not None and size < total:
        raise DataError(f"download of {url} incomplete ({size} of {total} bytes); run again to resume")
    problem = _checksum_problem(part, md5, sha256, verify)
    if problem is not None:
        _unlink(part)
        raise ChecksumError(f"{url}: checksum mismatch ({problem}); the file was deleted")
    os.replace(part, dest)
    return dest


def download_from_mirrors(filename: str, bases: list[str], dest: str | os.PathLike, **kwargs) -> Path:
    """:func:`download_url` from the first base URL that works.

    Args:
        filename: the file's name, appended to each base URL.
        bases: the base URLs, tried in order (each ending in ``/``).
        dest: the destination file.
        **kwargs: the keywords of :func:`download_url` (checksums, ``progress``, ...).

    Returns:
        ``dest``.

    Raises:
        ChecksumError: every mirror failed the checksum.
        DataError: no mirror worked (the errors of all mirrors in one message).
    """
    problems: list[DataError] = []
    for base in bases:
        try:
            return download_url(base + filename, dest, **kwargs)
        except DataError as exc:
            problems.append(exc)
    error = ChecksumError if problems and all(isinstance(p, ChecksumError) for p in problems) else DataError
    raise error(f"could not download {filename}: " + "; ".join(str(p) for p in problems))


# ---------------------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------------------
def _mnist_verifier(filename: str) -> Verifier:
    gz_md5, raw_md5 = MNIST_FILES[filename]

    def verify(path: Path) -> str | None:
        got = file_hashes(path, ("md5",))["md5"]
        if got == gz_md5:
            return None
        content = hashlib.md5()
        try:
            with gzip.open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    content.update(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            return f"md5 {got} differs from the official {gz_md5} and the file is not valid gzip ({exc})"
        if content.hexdigest() == raw_md5:
            return None
        return (
            f"md5 {got} differs from the official {gz_md5}, and so does the md5 of its content "
            f"({content.hexdigest()} != {raw_md5})"
        )

    return verify


def download_mnist(
    root: str | os.PathLike, splits: Iterable[str] = ("train", "test"), *, progress: bool = False
) -> list[Path]:
    """Download the official MNIST ``.gz`` files of ``splits`` into ``root`` (checked, skipped if present).

    Args:
        root: the data folder.
        splits: ``"train"`` and/or ``"test"``.
        progress: show download progress bars.

    Returns:
        The paths of the images and labels files, per split.

    Raises:
        DataError: no mirror worked (:class:`ChecksumError` when all failed the checksum).
    """
    root = Path(root).expanduser()
    paths = []
    for split in splits:
        for filename in MNIST_SPLIT_FILES[split]:
            paths.append(
                download_from_mirrors(
                    filename,
                    mirrors("mnist"),
                    root / filename,
                    verify=_mnist_verifier(filename),
                    progress=progress,
                )
            )
    return paths


def _extract_cifar10(archive: Path, root: Path) -> Path:
    """Extract ``cifar-10-batches-py/`` (regular files only, no path escapes) atomically into ``root``."""
    target = root / CIFAR10_FOLDER
    tmp = Path(tempfile.mkdtemp(prefix=".cifar10-extract-", dir=root))
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile():
                    continue
                if len(parts) != 2 or parts[0] != CIFAR10_FOLDER or parts[1] in ("", ".", ".."):
                    raise DataError(f"{archive}: unexpected member {member.name!r} in the CIFAR-10 archive")
                source = tar.extractfile(member)
                out = tmp / parts[1]
                with open(out, "wb") as handle:
                    shutil.copyfileobj(source, handle)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: corrupt CIFAR-10 archive ({exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_cifar10(root: str | os.PathLike, *, progress: bool = False) -> Path:
    """Download and extract the CIFAR-10 python batches into ``root/cifar-10-batches-py``.

    Args:
        root: the data folder (created if missing).
        progress: show a download progress bar.

    Returns:
        The extracted folder ``root/cifar-10-batches-py``.

    Raises:
        DataError: no mirror worked, or a corrupt archive (:class:`ChecksumError` on a checksum
            mismatch).
    """
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    filename, md5 = CIFAR10_ARCHIVE
    archive = download_from_mirrors(filename, mirrors("cifar10"), root / filename, md5=md5, progress=progress)
    return _extract_cifar10(archive, root)
