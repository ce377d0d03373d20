"""A gateway to the Hugging Face Hub through huggingface_hub: resolve a revision, download a snapshot.

Both honour HF_ENDPOINT (and the client's own settings); their failures come back as PermanentError
when retrying cannot help and TransientError otherwise. The token is handed to the client only:
messages name the model and revision, never the token. What to fetch, where the cache lives and how
snapshots are kept is the local target's policy (runtime/targets/local/model_cache.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime.errors import PermanentError, TransientError

# Answers that retrying cannot change: bad request, bad or missing token, no access, no such thing.
_PERMANENT_STATUS = frozenset({400, 401, 403, 404, 410})
_HINT = "check model.id and model.revision, and model.token for gated or private repos"


def resolve(model_id: str, revision: str, *, token: str | None) -> object:
    """What the hub says ``revision`` (a branch or tag) of ``model_id`` points at now: its model info's sha.

    Returned as the hub gave it (the caller checks it is a commit sha).
    """
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:  # the client would refuse the call; retrying cannot change that
        raise PermanentError(
            f"cannot resolve {model_id}@{revision} to a commit: HF_HUB_OFFLINE is set",
            hint="set model.revision to the commit sha, or unset HF_HUB_OFFLINE",
        )
    with _hub_errors(model_id, revision, verb="resolve", noun="revision lookup"):
        info = HfApi(endpoint=constants.ENDPOINT).model_info(
            model_id,
            revision=revision,
            expand=["sha"],
            token=token or False,
            timeout=constants.HF_HUB_ETAG_TIMEOUT,
        )
    return info.sha


def download(
    model_id: str,
    revision: str,
    *,
    cache_dir: Path,
    allow_patterns: list[str],
    token: str | None,
    force: bool = False,
) -> Path:
    """Fetch the files of ``model_id`` at ``revision`` matching ``allow_patterns`` into huggingface_hub's
    cache at ``cache_dir`` (a dropped transfer is resumed); the snapshot directory it assembled.

    ``force`` downloads again what the cache already holds (its bytes were found corrupted).
    """
    import huggingface_hub

    with _hub_errors(model_id, revision, verb="fetch", noun="download"):
        path = huggingface_hub.snapshot_download(
            repo_id=model_id,
            revision=revision,
            cache_dir=str(cache_dir),
            token=token or False,
            allow_patterns=allow_patterns,
            force_download=force,
        )
    return Path(path)


@contextmanager
def _hub_errors(model_id: str, revision: str, *, verb: str, noun: str) -> Iterator[None]:
    """Translate huggingface_hub's errors: PermanentError when retrying cannot help, else TransientError.

    Messages say "cannot {verb} model@revision: ..." or "{noun} of model@revision failed: ...", naming
    only the error type or HTTP status, never the client's message (or the token).
    """
    import httpx
    from huggingface_hub import errors as hf_errors

    what = f"{model_id}@{revision}"
    try:
        yield
    except (
        hf_errors.RepositoryNotFoundError,
        hf_errors.RevisionNotFoundError,
        hf_errors.GatedRepoError,
        hf_errors.DisabledRepoError,
    ) as exc:
        raise PermanentError(f"cannot {verb} {what}: {type(exc).__name__}", hint=_HINT) from exc
    except hf_errors.HFValidationError as exc:
        raise PermanentError(f"cannot {verb} {what}: invalid model id or revision", hint=_HINT) from exc
    except hf_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in _PERMANENT_STATUS:
            raise PermanentError(f"cannot {verb} {what}: HTTP {status}", hint=_HINT) from exc
        raise TransientError(f"{noun} of {what} failed: HTTP {status}") from exc
    except (httpx.HTTPError, OSError) as exc:
        # Connection refused or dropped, timeouts, a short body after the client's own retries.
        raise TransientError(f"{noun} of {what} failed: {type(exc).__name__}") from exc
