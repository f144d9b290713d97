"""Reading a file an operator names: a regular file, of a bounded size, or a clear refusal.

``/dev/zero`` as a certificate would grow memory until the process dies, a FIFO nobody writes
would hang it, a directory gives a confusing error: every file the tool reads on an operator's
word (configuration, password files, CA bundles, known_hosts, certificates, submissions, the
audit key) goes through :func:`read_small_file` or is checked by :func:`check_regular_file`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DEFAULT_LIMIT = 16 * 1024 * 1024
"""Larger than any configuration, certificate or bundle this tool has a use for."""


class FileRefused(ValueError):
    """The path names no regular file, or one larger than the limit; the message says which."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse_kind(path: Path, what: str, mode: int) -> FileRefused:
    return FileRefused(
        f"{what} {path} is {_kind(mode)}, not a regular file: give the path of the file itself"
    )


def check_regular_file(path: Path | str, what: str, *, limit: int = DEFAULT_LIMIT) -> Path:
    """Refuse ``path`` unless it is a regular file of at most ``limit`` bytes (symbolic links are
    followed). For files another library opens itself (a CA bundle handed to ``ssl``).
    ``FileNotFoundError`` and other ``OSError`` propagate for the caller to word."""
    p = Path(path)
    info = p.stat()
    if not stat.S_ISREG(info.st_mode):
        raise _refuse_kind(p, what, info.st_mode)
    if info.st_size > limit:
        raise FileRefused(
            f"{what} {p} is {info.st_size} bytes, more than the {limit} this tool reads: "
            "is it the right file?"
        )
    return p


def read_small_file(path: Path | str, what: str, *, limit: int = DEFAULT_LIMIT) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Opened with ``O_NONBLOCK`` so that a FIFO cannot block the open, and checked with ``fstat`` on
    the descriptor read from, so a file swapped after a check is still judged. Reads at most
    ``limit + 1`` bytes: a file that grows meanwhile is refused, not read without end.
    ``FileNotFoundError`` and other ``OSError`` propagate for the caller to word."""
    p = Path(path)
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse_kind(p, what, info.st_mode)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise FileRefused(
                    f"{what} {p} is more than {limit} bytes, more than this tool reads: is it the right file?"
                )
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_small_text(
    path: Path | str, what: str, *, limit: int = DEFAULT_LIMIT, errors: str = "strict"
) -> str:
    """:func:`read_small_file` decoded as UTF-8."""
    data = read_small_file(path, what, limit=limit)
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        raise FileRefused(
            f"{what} {path} is not UTF-8 text (byte {exc.start}): is it the right file?"
        ) from None
