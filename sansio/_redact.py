"""Keeping secrets out of reprs and error messages: passwords, iTrack hashes, ghostIds.

Two tools: :func:`redact` rewrites text that may quote a frame, a form or a URL (JSON
``"password":"…"``, ``"hash":"…"``, ``"ghostId":"…"``, ``"current":"…"``, form or query
``password=…``, ``hash=…``, ``ghostId=…`` with the key percent-decoded before it is judged,
so ``pass%77ord=…`` counts, and the user-info of a URL, ``scheme://user:password@host``), and
:func:`redact_value` copies decoded JSON with the values of those keys replaced.  Objects
keep the real values: only what is shown changes.  The Atmosphere tracking id is not a
secret and is left alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any, overload
from urllib.parse import unquote_plus

__all__ = [
    "REDACTED",
    "is_secret_key",
    "redact",
    "redact_headers",
    "redact_target",
    "redact_value",
    "redacted_repr",
]

REDACTED = "***"

_KEYS = r"(?:[A-Za-z_]*[Pp]assword|hash|ghostId|current)"
# A JSON string member; the value may be cut short (an excerpt), so the closing quote is
# optional and a trailing backslash is swallowed.
_JSON = r'("' + _KEYS + r'"\s*:\s*")(?:[^"\\]|\\.)*(?:\\?$|(?="))'
_FORM = r"((?<![A-Za-z0-9_])" + _KEYS + r"=)[^&\s\"'#;]*"
_TEXT = re.compile(_JSON + "|" + _FORM, re.IGNORECASE)
_BYTES = re.compile((_JSON + "|" + _FORM).encode("ascii"), re.IGNORECASE)
_MARKERS = ("assword", "hash", "ghostid", "current")


def _text_sub(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2)) + REDACTED


def _bytes_sub(match: re.Match[bytes]) -> bytes:
    return (match.group(1) or match.group(2)) + b"***"


# Members whose key is spelled with JSON escapes ("pass\u0077ord") or quoted with single
# quotes ('hash': '…'), as odd or hostile input may be: the key is decoded to be judged.
_ODD_MEMBER = re.compile(
    r"""(["'])((?:[^"'\\]|\\.)*)\1(\s*:\s*)(["'])(?:(?!\4)[^\\]|\\.)*(?:\4|$)"""
)
_SECRET_KEY = re.compile(_KEYS, re.IGNORECASE)


def _odd_sub(match: re.Match[str]) -> str:
    quote, key, separator, value_quote = match.groups()
    try:
        decoded = json.loads('"' + key.replace('"', '\\"') + '"') if "\\" in key else key
    except ValueError:
        return match.group(0)
    if not isinstance(decoded, str) or not _SECRET_KEY.fullmatch(decoded):
        return match.group(0)
    return f"{quote}{key}{quote}{separator}{value_quote}{REDACTED}{value_quote}"


# The user-info of a URL ends where its authority does; the last "@" before that ends it.
_AUTHORITY_END = re.compile(r'[/?#\s"<>\\]')


def _mask_userinfo(text: str) -> str:
    """``scheme://user:password@host…`` → ``scheme://***@host…``, for every URL in ``text``
    (one pass: each authority is scanned once)."""
    pieces: list[str] = []
    start = pos = 0
    while (found := text.find("://", pos)) >= 0:
        authority = found + 3
        end_match = _AUTHORITY_END.search(text, authority)
        end = end_match.start() if end_match else len(text)
        at = text.rfind("@", authority, end)
        if at >= 0:
            pieces += (text[start:authority], REDACTED)
            start = at
        pos = max(end, authority)
    if not pieces:
        return text
    pieces.append(text[start:])
    return "".join(pieces)


# A form or query pair whose key holds percent-escapes: decoded, then judged like any key.
_ENCODED_PAIR = re.compile(
    r"(?<![A-Za-z0-9_.~+%-])([A-Za-z0-9_.~+-]*%[A-Za-z0-9_.~+%-]*=)[^&\s\"'#;]*"
)


def _decoded_key(key: str) -> str:
    for _ in range(3):  # a key encoded twice or thrice is decoded as far
        decoded = unquote_plus(key)
        if decoded == key:
            break
        key = decoded
    return key


def _encoded_sub(match: re.Match[str]) -> str:
    key = match.group(1)
    if _SECRET_KEY.fullmatch(_decoded_key(key[:-1])):
        return key + REDACTED
    return match.group(0)


def _redact_text(text: str) -> str:
    if "://" in text and "@" in text:
        text = _mask_userinfo(text)
    if "%" in text and "=" in text:
        text = _ENCODED_PAIR.sub(_encoded_sub, text)
    if "\\u" in text or "'" in text:
        text = _ODD_MEMBER.sub(_odd_sub, text)
    lowered = text.lower()
    if not any(marker in lowered for marker in _MARKERS):
        return text
    return _TEXT.sub(_text_sub, text)


@overload
def redact(text: str) -> str: ...
@overload
def redact(text: bytes) -> bytes: ...


def redact(text: str | bytes) -> str | bytes:
    """``text`` with every secret value replaced by ``***`` (cheap when there is none)."""
    if isinstance(text, str):
        return _redact_text(text)
    if (b"://" in text and b"@" in text) or (b"%" in text and b"=" in text):
        # The rarer rules work on text: bytes map one to one through Latin-1.
        text = _redact_text(text.decode("latin-1")).encode("latin-1")
    lowered_bytes = text.lower()
    if not any(marker.encode() in lowered_bytes for marker in _MARKERS):
        return text
    return _BYTES.sub(_bytes_sub, text)


_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SECRET_HEADERS = frozenset(
    ("authorization", "proxy-authorization", "cookie", "set-cookie", "sec-websocket-protocol")
)


def redact_target(target: str) -> str:
    """A request target or URL with secrets hidden: user-info (``user:password@``), secret
    query values (keys percent-decoded first), and a GUID in the path (where a FleetFreedom
    client puts its ghostId; Atmosphere's tracking id, not a secret, travels in the query and
    stays)."""
    path, sep, query = target.partition("?")
    if "://" in path and "@" in path:
        path = _mask_userinfo(path)
    return _GUID.sub(REDACTED, path) + sep + redact(query)


def redact_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers with credentials (``Authorization``, cookies) and GUID subprotocols hidden."""
    shown = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _SECRET_HEADERS:
            value = _GUID.sub(REDACTED, value) if lowered == "sec-websocket-protocol" else REDACTED
        shown.append((name, value))
    return shown


def is_secret_key(key: object) -> bool:
    """Whether a JSON key names a secret (``password``, ``newPassword``, ``hash``, …)."""
    if type(key) is not str:
        return False
    lowered = key.lower()
    return lowered.endswith("password") or lowered in ("hash", "ghostid", "current")


def redact_value(value: Any) -> Any:
    """A copy of decoded JSON where the string values of secret keys read ``***``."""
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_key(key) and isinstance(item, str) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    if isinstance(value, (str, bytes)):
        return redact(value)
    return value


def redacted_repr(obj: Any, secret: tuple[str, ...] = ()) -> str:
    """A dataclass repr with secrets redacted: the fields named in ``secret`` show ``***``,
    text, bytes and JSON values are passed through :func:`redact` / :func:`redact_value`."""
    shown = []
    for f in fields(obj):
        if not f.repr:
            continue
        value = getattr(obj, f.name)
        if f.name in secret and value is not None:
            text = repr(REDACTED)
        else:
            text = repr(redact_value(value))
        shown.append(f"{f.name}={text}")
    return f"{type(obj).__qualname__}({', '.join(shown)})"
