"""Files: atomic writes, strict JSON, output directories and the status life cycle of a manifest.

Every result bpttbench writes goes through here, so that a crash, a full disk or a signal never
leaves a half-written file that looks complete: a file is written to a temp file beside it,
fsynced and renamed over the old one, and a `Manifest` says `running` until the work ends.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bpttbench.errors import ResultsError

MANIFEST_STATUSES = ("running", "complete", "interrupted", "failed")

_UMASK = os.umask(0)
os.umask(_UMASK)


def now() -> str:
    """The current UTC time, to the second, as ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def one_line(message: Any) -> str:
    """A message (or an exception, prefixed with its type) folded onto one line."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    if isinstance(message, BaseException):
        return f"{type(message).__name__}: {text}" if text else type(message).__name__
    return text or "unknown error"


def _hint(exc: OSError) -> str:
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "free space or choose --out elsewhere"
    if code in (errno.EACCES, errno.EPERM):
        return "check its permissions or choose --out elsewhere"
    if code == errno.EROFS:
        return "the filesystem is read-only; choose --out elsewhere"
    return "choose --out elsewhere"


def write_error(path: Path, exc: OSError, verb: str = "write") -> ResultsError:
    """The one-line error for an OSError on path, naming the reason and what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ResultsError(f"could not {verb} {path}: {reason}; {_hint(exc)}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the file itself was synced
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable, *, binary: bool = False) -> None:
    """Write path through a temp file in the same directory, fsync, os.replace.

    `write` receives the open file. Any OSError becomes a one-line ResultsError and the old
    file, if any, is left as it was.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path.parent)


def jsonable(obj: Any) -> Any:
    """obj as strict JSON data: NaN and infinity become null (strict JSON has neither), NumPy
    scalars and arrays become numbers and lists, paths strings, dataclasses dicts."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    return str(obj)


def write_json(path: Path, data: Any) -> None:
    """Write data as indented strict JSON, atomically."""
    text = json.dumps(jsonable(data), indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text))


def make_dir(path: Path) -> Path:
    """mkdir -p, with a one-line ResultsError instead of an OSError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ResultsError(f"could not create {path}: a file of that name exists; choose --out elsewhere") from None
    except OSError as exc:
        raise write_error(path, exc, "create") from exc
    return path


def _dangerous_to_clear(path: Path) -> str | None:
    """Why --force must not empty this directory, or None if it may."""
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        return "it is the filesystem root"
    if resolved == Path.home().resolve():
        return "it is your home directory"
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        return "it holds the current directory"
    if (resolved / ".git").exists():
        return "it is a git checkout"
    return None


def _probe_writable(directory: Path, shown: Path) -> None:
    """ResultsError unless a directory can be made in `directory` (and removes it again).

    Permission bits do not tell: a read-only mount, a full quota, procfs, or root (who ignores
    them) all answer differently from what os.access says.
    """
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".bpttbench-probe-", dir=directory))
    except OSError as exc:
        raise write_error(shown, exc, "create") from exc


def check_out_dir(path: Path, *, force: bool) -> list[Path]:
    """Refuse an output directory that cannot be written; returns what --force would remove.

    Callers run it before any work starts, so a bad --out fails in the first second.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        ancestor = path.absolute().parent
        while not (ancestor.exists() or ancestor.is_symlink()):
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ResultsError(f"could not create {path}: {ancestor} is a file, not a directory; choose another --out")
        _probe_writable(ancestor, path)
        return []
    if not path.is_dir():
        raise ResultsError(f"{path} is a file, not a directory; choose another --out")
    try:
        children = list(path.iterdir())
    except OSError as exc:
        raise write_error(path, exc, "read") from exc
    _probe_writable(path, path)
    if children:
        if not force:
            raise ResultsError(f"{path} already holds files; choose another --out or pass --force to replace them")
        danger = _dangerous_to_clear(path)
        if danger:
            raise ResultsError(f"refusing to clear {path} with --force: {danger}; choose a dedicated --out directory")
    return children


def clear_dir(path: Path, *, force: bool) -> Path:
    """Make path an empty, writable directory (emptying it only with force); one-line errors."""
    path = Path(path)
    for child in check_out_dir(path, force=force):
        try:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        except OSError as exc:
            raise write_error(child, exc, "remove") from exc
    make_dir(path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise ResultsError(f"could not write {path}: Permission denied; check its permissions or choose --out elsewhere")
    return path


class Manifest:
    """A JSON manifest whose `status` follows the work it describes: `running` from the start,
    then `complete`, `interrupted` (KeyboardInterrupt, so Ctrl-C and SIGTERM) or `failed` (any
    other exception, whose first line is kept as `error`). Every save is atomic, so a reader
    sees either the previous manifest or the new one; a SIGKILL leaves it saying `running`.

    As a context manager it starts on entry and finishes on exit: a normal exit completes it,
    an exception marks it and propagates.
    """

    def __init__(self, path: Path, data: dict | None = None):
        self.path = Path(path)
        self.data: dict = dict(data or {})

    @property
    def status(self) -> str | None:
        return self.data.get("status")

    @property
    def finished(self) -> bool:
        return self.status in MANIFEST_STATUSES[1:]

    def save(self, **changes) -> None:
        self.data.update(changes)
        self.data["updated_at"] = now()
        write_json(self.path, self.data)

    def start(self, **changes) -> "Manifest":
        stamp = now()
        self.data.update(status="running", started_at=self.data.get("started_at") or stamp, finished_at=None)
        self.save(**changes)
        return self

    def finish(self, status: str = "complete", *, error: str | None = None, **changes) -> None:
        if status not in MANIFEST_STATUSES[1:]:
            raise ValueError(f"a finished manifest's status is one of {', '.join(MANIFEST_STATUSES[1:])}, got {status!r}")
        if error is not None:
            changes["error"] = error
        self.save(status=status, finished_at=now(), **changes)

    def __enter__(self) -> "Manifest":
        if self.status != "running":
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.finished:
            return False
        if exc_type is None:
            self.finish("complete")
            return False
        interrupted = issubclass(exc_type, KeyboardInterrupt)
        try:
            self.finish("interrupted" if interrupted else "failed", error=None if interrupted else one_line(exc))
        except Exception as close_exc:  # the original exception matters more; keep it and say so
            exc.add_note(f"(also: could not mark {self.path} as finished: {close_exc})")
        return False


def cache_dir() -> Path:
    """$BPTTBENCH_CACHE_DIR, else $XDG_CACHE_HOME/bpttbench, else ~/.cache/bpttbench."""
    own = os.environ.get("BPTTBENCH_CACHE_DIR")
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative path there is invalid and is to be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "bpttbench"
