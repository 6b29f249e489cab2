"""Image-derived text made safe for humans: terminals, CI logs, reports.

Names, ids and file names stored in an image are hostile bytes: a newline
in a bitmap name would print a forged line in the text report (a fake
``image.qcow2: 0 errors`` summary), an escape sequence would drive the
terminal, a ``\\u2028`` or a bidi control would reorder what a reviewer
reads.  :func:`label` and :func:`shown` render such text for messages and
structure paths; :func:`escape` is the renderers' second line of defence,
applied to every message, location and path they print.

What is escaped: every character that ``str.isprintable`` rejects, that is
the C0 controls (``\\n``, ``\\r``, ``\\t``, ``\\x1b``, NUL ...), DEL, the C1
controls, the Unicode line and paragraph separators, format characters
(bidi controls, zero-width characters), surrogates (an undecodable file
name), private-use and unassigned code points, and separators other than
the ASCII space.  They become ``\\n``, ``\\r``, ``\\t``, ``\\xNN``,
``\\uNNNN`` or ``\\UNNNNNNNN``, the escapes of a Python string literal.
"""

from __future__ import annotations

import re

#: Anything outside printable ASCII: the only characters worth a second look.
_NOT_PLAIN = re.compile(r"[^\x20-\x7e]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Bytes of an image name shown before the rest is cut (marker: how many more).
LIMIT = 64


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable():
        return char
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` with every non-printable character escaped (see the module
    docstring); printable text, backslashes included, is unchanged.

    >>> escape("a\\nb\\x1b[31m\\u2028")
    'a\\\\nb\\\\x1b[31m\\\\u2028'
    """
    if _NOT_PLAIN.search(text) is None:
        return text
    return _NOT_PLAIN.sub(_escape_char, text)


def label(raw: bytes | str, limit: int = LIMIT) -> str:
    """A name or id from the image for a structure path or a message:
    bytes outside ASCII as ``\\xNN``, non-printables escaped, at most
    ``limit`` bytes (characters for ``str``) shown, then how many more.

    >>> label(b"daily")
    'daily'
    >>> label(b"a\\nb\\xe9")
    'a\\\\nb\\\\xe9'
    >>> label(b"x" * 70, 4)
    'xxxx...(+66 bytes)'
    """
    head = raw[:limit]
    text = head.decode("ascii", "backslashreplace") if isinstance(head, bytes) else head
    more = len(raw) - limit
    unit = "bytes" if isinstance(raw, bytes) else "characters"
    return escape(text) + (f"...(+{more} {unit})" if more > 0 else "")


def shown(raw: bytes | str, limit: int = LIMIT) -> str:
    """:func:`label` in single quotes, for a name inside a sentence."""
    return f"'{label(raw, limit)}'"


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_safe(document: str) -> str:
    """A JSON text made with ``ensure_ascii=False`` with its lone surrogates
    (an undecodable file name) written as ``\\uDCxx`` escapes: still the
    same JSON, and encodable as UTF-8."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def one_line(text: str, limit: int = 200) -> str:
    """Any text (an error message, a configuration value's repr) as one
    escaped line of at most about ``limit`` characters."""
    text = escape(text)
    return text if len(text) <= limit else f"{text[:limit]}...(+{len(text) - limit} characters)"


def exception_text(exc: BaseException) -> str:
    """``Type: message`` for an exception, never with an empty message: a
    MemoryError is said to be one, and any message is one escaped line."""
    message = one_line(str(exc))
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError)" + (f": {message}" if message else "")
    if isinstance(exc, RecursionError):
        return f"too deeply nested (RecursionError): {message}"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def yaml_value(value: object) -> str:
    """``value`` as a YAML configuration file writes it (``true``, ``null``,
    ``qemu``; quoted only where YAML needs it): how rule options are shown
    to users, who write them in YAML.

    >>> yaml_value(True), yaml_value(None), yaml_value("qemu"), yaml_value("no")
    ('true', 'null', 'qemu', "'no'")
    """
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30)
    return text.removesuffix("...\n").strip()


#: Binary units, each 1024 times the one before (IEC names, as QEMU prints them).
SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_size(size: int) -> str:
    """A byte count in the largest binary unit it reaches: a whole number
    when it is one (``64 MiB``, ``512 B``), else rounded to two decimals
    (``1.50 KiB``); exact integer arithmetic, whatever the size.

    >>> format_size(64 << 20), format_size(1023), format_size(1536), format_size(2**61)
    ('64 MiB', '1023 B', '1.50 KiB', '2 EiB')
    """
    if size < 0:
        return "-" + format_size(-size)
    exponent = 0
    while exponent + 1 < len(SIZE_UNITS) and size >= 1024 ** (exponent + 1):
        exponent += 1
    unit = 1024**exponent
    if size % unit == 0:
        return f"{size // unit} {SIZE_UNITS[exponent]}"
    hundredths = (size * 100 + unit // 2) // unit  # rounded half up
    if hundredths >= 1024 * 100 and exponent + 1 < len(SIZE_UNITS):
        # 1023.999 KiB would print as 1024.00 KiB: say 1.00 MiB instead
        exponent += 1
        unit = 1024**exponent
        hundredths = (size * 100 + unit // 2) // unit
    return f"{hundredths // 100}.{hundredths % 100:02d} {SIZE_UNITS[exponent]}"
