"""Read dumps and object files from disk or stdin. I/O lives here, not in parse/."""

from __future__ import annotations

from svcinspect.errors import InputError, NotADumpError


class TextSource:
    """A named text read from a file or stdin. Holds the bytes as read and decodes
    them on first use of ``text`` (a bisecting reader of a large dump may never
    need the whole text as ``str``)."""

    __slots__ = ("name", "_data", "_text")

    def __init__(self, name: str, text: str | None = None, *, data: bytes | None = None):
        if text is None and data is None:
            raise ValueError("TextSource needs text or data")
        self.name, self._text, self._data = name, text, data

    @property
    def text(self) -> str:
        if self._text is None:
            assert self._data is not None
            self._text = self._data.decode("utf-8", errors="replace")
        return self._text

    @property
    def data(self) -> bytes:
        if self._data is None:
            assert self._text is not None
            self._data = self._text.encode("utf-8")
        return self._data

    def release_data(self) -> None:
        """Forget the bytes once the text is decoded (``data`` encodes it again if
        asked): a whole-dump parse then never holds a 100 MB dump twice."""
        if self._text is not None:
            self._data = None

    def __repr__(self) -> str:
        return f"TextSource({self.name!r})"


def read_text(path: str) -> TextSource:
    """Read ``path`` (``-`` for stdin) as text, gunzipping gzip data (``.gz`` or not);
    one-line errors for what goes wrong. At most ``--max-input-size`` bytes, before
    and after decompression; devices and sockets are refused (``sources.limits``)."""
    name, data = _read_bytes(path)
    if data[:2] == b"\x1f\x8b":  # gzip (a .gz bug-report attachment): read through it
        data = _gunzip(data, name)
    if b"\x00" in data[:4096]:
        raise NotADumpError("binary data, not text; pass the output of `iptables-save` (or the objects as JSON/YAML)", name)
    return TextSource(name, data=data)


def _read_bytes(path: str) -> tuple[str, bytes]:
    from svcinspect.sources.limits import read_bounded

    return read_bounded(path)


def _gunzip(data: bytes, name: str) -> bytes:
    """Decompress gzip data, never to more than ``--max-input-size`` bytes (a
    small gzip bomb must not fill memory)."""
    import zlib

    from svcinspect.sources.limits import LIMITS

    limit = LIMITS.max_input_size
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise InputError(f"{name}: gzip data that decompresses to more than --max-input-size "
                             f"({limit} bytes)")
        out += d.flush()
    except zlib.error as exc:
        raise InputError(f"{name}: gzip data that does not decompress ({exc})") from None
    if not d.eof:
        raise InputError(f"{name}: gzip data that is cut short")
    return out
