"""Expected failures as one line and an exit code: 2 for the user's mistakes, 1 for the environment's.

``describe(exc)`` maps an exception to ``(exit_code, line)``; the entry point prints that line (and the
traceback only with ``HALA_DEBUG=1``). Exception classes of optional libraries are matched by module and name,
so nothing heavy is imported to classify an error.
"""

from __future__ import annotations

import errno
import os

USER_MISTAKE, ENVIRONMENT = 2, 1
DEBUG_ENV = "HALA_DEBUG"

# Errno values that mean "this output location cannot take the write", whoever is running.
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


class InsufficientSpace(OSError):
    """A stage's estimated output does not fit the free space of its cache directory (checked before it runs)."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror or ""


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _names(exc: BaseException) -> set[str]:
    return {f"{c.__module__}.{c.__name__}" for c in type(exc).__mro__}


def _one_line(text: object) -> str:
    return "; ".join(p.strip() for p in str(text).splitlines() if p.strip())


def _hub_repo(exc: BaseException) -> str:
    for attr in ("repo_id",):
        value = getattr(exc, attr, None)
        if value:
            return str(value)
    return ""


def describe(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line that tell the user what went wrong and what to do."""
    names = _names(exc)
    if "hala_exp.core.schema.ConfigError" in names:
        return USER_MISTAKE, f"config error: {_one_line(exc)}"
    if names & {"hydra.errors.HydraException", "omegaconf.errors.OmegaConfBaseException"}:
        text = str(exc).split("Config search path:")[0]  # Hydra appends its search path to unknown options
        return USER_MISTAKE, f"config error: {_one_line(text)}"
    hub = {n.rsplit(".", 1)[-1] for n in names if n.startswith("huggingface_hub.")}
    # LocalEntryNotFoundError subclasses EntryNotFoundError: "not reachable" is decided first.
    if hub & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or names & {
        "requests.exceptions.ConnectionError",
        "httpx.ConnectError",
        "httpx.TimeoutException",
    }:
        return ENVIRONMENT, (
            f"the Hugging Face hub is unreachable and the model is not in the local cache ({_one_line(exc)[:300]}); "
            "connect to the network, or unset HF_HUB_OFFLINE"
        )
    if hub & {"RepositoryNotFoundError", "RevisionNotFoundError", "GatedRepoError", "EntryNotFoundError"}:
        return USER_MISTAKE, (
            f"model not found on the Hugging Face hub{(': ' + _hub_repo(exc)) if _hub_repo(exc) else ''} "
            f"({type(exc).__name__}); check the model path/revision (and HF_TOKEN for gated models)"
        )
    if isinstance(exc, InsufficientSpace):
        return ENVIRONMENT, f"not enough disk space: {exc}"
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        where = exc.filename or "the output directory"
        return ENVIRONMENT, f"no space left on the device writing {where}: free space or set paths.output_dir"
    if isinstance(exc, OSError) and exc.errno in NOT_WRITABLE:
        where = exc.filename or "the output directory"
        return ENVIRONMENT, (f"cannot write {where} ({os.strerror(exc.errno)}): choose a writable paths.output_dir")
    if isinstance(exc, FileNotFoundError):
        return ENVIRONMENT, f"not found: {_one_line(exc)}"
    if isinstance(exc, ModuleNotFoundError):
        return ENVIRONMENT, f"missing package: {_one_line(exc)} (make setup installs the locked environment)"
    return ENVIRONMENT, f"{type(exc).__name__}: {_one_line(exc)[:500]} (rerun with {DEBUG_ENV}=1 for the traceback)"
