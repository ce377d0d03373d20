"""What a secret looks like, for every place that must never echo or store one.

A spec holds secrets only as references (a Prefect block's name, an environment variable's name).
People still paste the value itself: into ``secret_block:``, ``credentials:``, ``env:``, an env map.
The spec rejects that, and its messages, the flow-run parameters Prefect stores and the CLI's output
must not carry the value on: these helpers tell "this string may be a secret" (so do not show it)
and strip such values from data that is about to leave the process (``redact``).

Two strengths of evidence, on purpose:
- ``looks_like_token``: well-known token formats (Hugging Face, AWS access key ids, GitHub, private
  keys...). Safe to act on anywhere: no valid spec value has these shapes.
- ``looks_secret``: those, or an opaque string (24+ characters of token alphabet mixing upper case,
  lower case and digits, like an AWS secret access key or an Azure client secret). Only used to decide
  whether to *show* a value that is already invalid: a long model id may match, and then the message
  just does not quote it.

Pure: stdlib only; imported by runtime/spec/targets.py, so it must not import the spec modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Hugging Face access tokens, matched anywhere so that one pasted into env or args is refused.
HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}")
_TOKENS = re.compile(
    r"hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|(?<![A-Z0-9])(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}(?![A-Z0-9])"  # AWS access key / role ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}"  # GitHub
    r"|-----BEGIN [A-Z ]*PRIVATE KEY"  # PEM private keys (GCP service accounts)
    r"|\bsk-[A-Za-z0-9_-]{20,}|\bxox[abpr]-[A-Za-z0-9-]{10,}"  # API keys of common services
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"  # JWTs (bearer tokens)
)
_OPAQUE = re.compile(r"[A-Za-z0-9/+=~._-]{24,}")
# Words of a key or env var name (split on '_') that mark it as a secret; TOKENIZERS_PARALLELISM is not.
SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "APIKEY", "CREDENTIALS"})
# Keys that name a secret's *location* (a block or a variable): their value is kept when it is a
# plain name, and treated as a pasted secret otherwise.
_NAME_KEYS = {"secret_block": r"[a-z0-9][a-z0-9-]{0,254}", "block": r"[a-z0-9][a-z0-9-]{0,254}",
              "env": r"[A-Za-z_]\w{0,254}", "credentials": r"[a-z0-9][a-z0-9-/]{0,254}"}  # fmt: skip
# Keys whose string value is a secret itself (inline SecretRef / credentials fields).
_VALUE_KEYS = frozenset(
    {
        "value",
        "token",
        "secret",
        "password",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "service_account_info",
        "private_key",
        "client_secret",
    }
)
REDACTED = "<redacted>"


def looks_like_token(text: str) -> bool:
    """True when ``text`` holds a well-known access-token format anywhere in it."""
    return bool(_TOKENS.search(text))


def looks_secret(text: str) -> bool:
    """True when ``text`` may be a secret: a known token format, or an opaque mixed-case string."""
    if looks_like_token(text):
        return True
    for word in _OPAQUE.findall(text):
        if re.search(r"[A-Z]", word) and re.search(r"[a-z]", word) and re.search(r"\d", word):
            return True
    return False


def shown(value: Any) -> str:
    """``repr(value)`` for a message, or a placeholder when it may be a secret."""
    text = repr(value)
    return "(value not shown: it may be a secret)" if looks_secret(text) else text


def unless_secret(value: str, neutral: str) -> str:
    """``value`` to derive a suggestion from (a fixed-up name), or ``neutral`` when it may be a
    secret: a suggestion made from one (lower-cased, '-' for '/') would still publish most of it."""
    return neutral if looks_secret(value) else value


def scrub(text: str, *, opaque: bool = False) -> str:
    """``text`` with every known token format replaced by ``REDACTED``; with ``opaque``, also every
    opaque mixed-case word (for paths, which hold field names and user keys, never such words)."""
    text = _TOKENS.sub(REDACTED, text)
    if opaque:
        text = _OPAQUE.sub(lambda m: REDACTED if looks_secret(m.group(0)) else m.group(0), text)
    return text


def secret_key(key: Any) -> bool:
    """True for a mapping key whose string value is a secret (``API_KEY``, ``password``, ``token``)."""
    name = str(key)
    if name.lower() in _VALUE_KEYS:
        return True
    # "key" alone is a taint's or label's key, not a secret; "API_KEY", "hf_token" are.
    words = set(re.split(r"[^A-Z]+", name.upper())) - {""}
    return name.lower() != "key" and bool(words & SECRET_WORDS)


def redact(value: Any, key: Any = None, *, inside_ref: bool = False, strict: bool = False) -> Any:
    """A copy of JSON-like ``value`` with every secret-looking string replaced by ``REDACTED``.

    For data about to be stored outside this process (Prefect flow-run parameters): secret-looking
    keys lose their string values, reference keys keep only values that are plain names, everything
    else inside a ``token:`` or ``credentials:`` reference is dropped, and any string holding a known
    token format is replaced wherever it sits. Valid specs pass unchanged (the spec refuses all of
    these), so a run restarted from stored parameters still validates.

    ``strict`` (for data already known to be invalid, which no run can use): also every string and
    key that ``looks_secret``, e.g. an AWS secret access key pasted as the spec's name.
    """
    if isinstance(value, Mapping):
        # `value` is a secret in {secret_block/env: ..., value: ...}, but a taint's or label's
        # {key: ..., value: ...} pair is plain data.
        pair = "key" in value
        ref = inside_ref or str(key) in ("token", "credentials")
        out: dict[Any, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            hidden = looks_secret(str(k)) if strict else looks_like_token(str(k))
            name = f"{REDACTED}-{i}" if hidden else k
            out[name] = (
                redact(v, k, inside_ref=ref, strict=strict)
                if not (pair and k == "value")
                else redact(v, strict=strict)
            )
        return out
    if isinstance(value, list | tuple):
        return [redact(v, inside_ref=inside_ref, strict=strict) for v in value]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return value
    if key is not None:
        name = str(key)
        if name in _NAME_KEYS:
            plain = re.fullmatch(_NAME_KEYS[name], value) and not looks_secret(value)
            return value if plain else REDACTED
        if (inside_ref or secret_key(name)) and value:
            return REDACTED
    return REDACTED if (looks_secret(value) if strict else looks_like_token(value)) else value
