"""Turn a plain config mapping into a stage's typed ``Config`` dataclass, with errors that name the key.

Supports the types our schemas use: str, int, float, bool, Literal[...], Optional[...], list[...],
dict[...] and nested dataclasses. Unknown keys and missing required values are errors.

Why not a library (issue 8, item 8; checked with omegaconf 2.4.1rc1 and pydantic 2.14): OmegaConf structured
configs take neither ``Literal`` nor a union with a container (``merge.t: float | list[float]``), so the
schemas would trade their types for Enums and ``Any``. Pydantic (``TypeAdapter`` in strict mode over these
dataclasses) would replace ``_coerce``, but its errors are worse where users err most: an unknown key says
"Extra inputs are not permitted" without the allowed keys, a failed union lists one error per member, and
the location is a tuple to re-format; the ``check()`` hooks and the ``???`` rule would still be ours. Net:
about as long, with worse messages.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin


class ConfigError(ValueError):
    """A config value that cannot run; the message names the key and what is allowed."""


# Field metadata for a config field that changes speed or presentation, never the bytes a stage writes
# (batch sizes of generation/eval, workers, timeouts, prices, display names):
# ``x: int = field(default=16, metadata=NOT_FINGERPRINTED)``. The store leaves such fields out of fingerprints.
NOT_FINGERPRINTED = {"fingerprint": False}


def build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            value = data[name]
            if value == "???":
                raise ConfigError(f"{key}: a value is required (it is '???')")
            try:
                kwargs[name] = _coerce(hints[name], value, key)
            except ConfigError:
                if "expects" not in f.metadata:  # `field(metadata={"expects": "..."})` words the error
                    raise
                raise ConfigError(f"{key}: must be {f.metadata['expects']}, got {value!r}") from None
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: a value is required")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except ConfigError as e:
            raise ConfigError(f"{where}.{e}" if where else str(e)) from None
    return obj


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # evaluates every annotation string: slow, and the same every time


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not allowed; allowed values: {list(allowed)}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {args}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = get_args(tp) or (Any,)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, item = get_args(tp) or (Any, Any)
        return {k: _coerce(item, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def in_range(key: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not (low <= value <= high):
        raise ConfigError(f"{key}: {value} is outside [{low}, {high}]")
