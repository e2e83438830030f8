"""Read-only copies of the modules a reward program sees (numpy with its submodules, math).

A reward program gets ``np``, ``numpy`` and ``math`` in its namespace, and ``import numpy as N``
(or ``from numpy import linalg``) hands it the same objects. Were they the real modules, one
assignment (``N.mean = fake``) would change numpy for everything else in the process: the
fitness evaluation, the critic's statistics, SB3 itself. The static policy refuses attribute
assignment wherever it can see it; these copies make it an error at run time where it cannot:

- a module is a :class:`ReadOnlyModule` whose attributes are fixed when it is made: setting or
  deleting one raises ``AttributeError``; its submodules (``np.linalg``, ``np.fft`` ...) are
  read-only copies too, so no alias, submodule or re-export reaches the real one;
- a callable the copy exposes that could carry attributes (a Python function, a numpy
  dispatcher, a class written in Python) is wrapped in a :class:`ReadOnlyCallable` without a
  ``__dict__``, so it cannot be used to keep state across calls (``np.mean.count = 1``);
  C-level callables (ufuncs, builtins) and immutable types (``np.ndarray``, ``np.float64``)
  are exposed as they are: nothing can be set on them;
- what keeps process-wide state is left out: ``numpy.random`` (its global generator),
  ``seterr``/``seterrcall`` and the print-option setters, besides every name the static policy
  forbids (files, the OS, raw memory).

The copies are made once per process and shared by every program: nothing in them can change.
Written by hand: no library offers a frozen module view (``types.MappingProxyType`` freezes a
dict, not a module's attribute protocol).
"""

from __future__ import annotations

import math
import types
import warnings
from functools import lru_cache
from typing import Any, Callable, Iterable

import numpy as np

#: numpy submodules a reward may reach (through ``np.<name>``); the rest are left out
SUBMODULES = frozenset({"linalg", "fft", "polynomial", "emath", "exceptions", "dtypes"})
#: names that set or read process-wide state: a program could keep state across episodes in them
STATEFUL = frozenset(
    {
        "random", "seterr", "geterr", "seterrcall", "geterrcall", "errstate", "set_printoptions", "get_printoptions",
        "printoptions", "setbufsize", "getbufsize", "set_default_printstyle", "set_string_function", "setdefaultprintstyle",
    }
)
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: attributes of such a type cannot be set
_FORBIDDEN_KEY = "__autoreward_forbidden__"


class ReadOnlyModule(types.ModuleType):
    """A module whose attributes cannot be set or deleted (a reward's ``np``, ``math``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.__name__} is read-only to a reward program: {self.__name__}.{name} cannot be assigned")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self.__name__} is read-only to a reward program: {self.__name__}.{name} cannot be deleted")

    def __reduce__(self) -> tuple[Any, tuple[str, frozenset[str]]]:
        """Pickled by name, rebuilt as the receiving process's own copy (a reward crosses into
        SubprocVecEnv workers inside the env factories)."""
        return _by_name, (self.__name__, vars(self)[_FORBIDDEN_KEY])


class ReadOnlyCallable:
    """A callable without attributes of its own: calls go to ``fn``; nothing can be set on it."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{name!r} cannot be set: numpy's functions are read-only to a reward program")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{name!r} cannot be deleted: numpy's functions are read-only to a reward program")

    def __repr__(self) -> str:
        return f"<read-only {getattr(self._fn, '__name__', 'callable')}>"

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return ReadOnlyCallable, (self._fn,)


def _settable(obj: Any) -> bool:
    """Whether a program could set an attribute on ``obj`` (and so keep state in it)."""
    if isinstance(obj, type):
        return not obj.__flags__ & _IMMUTABLE_TYPE
    return hasattr(obj, "__dict__")


_LEAVE_OUT = object()


def _expose(value: Any, forbidden: Iterable[str]) -> Any:
    """What the read-only copy holds for one attribute (:data:`_LEAVE_OUT`: nothing)."""
    if isinstance(value, types.ModuleType):
        sub = value.__name__.rpartition(".")[2]
        return _freeze(value, forbidden) if value.__name__.startswith("numpy.") and sub in SUBMODULES else _LEAVE_OUT
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None), np.generic)):
        return value
    if callable(value) and _settable(value):
        # a Python class: a wrapped constructor (isinstance against it is then refused, which
        # reward code has no use for); np.ndarray, np.dtype and the scalar types are immutable
        return ReadOnlyCallable(value)
    if callable(value):
        return value
    if isinstance(value, tuple) and all(isinstance(v, (bool, int, float, str, type(None))) for v in value):
        return value
    return _LEAVE_OUT  # anything else (instances of Python classes: np.r_, np.mgrid ...)


def _freeze(module: types.ModuleType, forbidden: Iterable[str]) -> ReadOnlyModule:
    forbidden = frozenset(forbidden)
    out = ReadOnlyModule(module.__name__, module.__doc__)
    attrs: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in dir(module):
            if name.startswith("_") or name in forbidden or name in STATEFUL:
                continue
            try:
                value = getattr(module, name)
            except Exception:  # noqa: BLE001 - numpy's removed aliases raise on access
                continue
            exposed = _expose(value, forbidden)
            if exposed is not _LEAVE_OUT:
                attrs[name] = exposed
    vars(out).update(attrs)  # the module's own dict, not through the refused __setattr__
    vars(out)[_FORBIDDEN_KEY] = forbidden  # what it leaves out, to be rebuilt alike when pickled (a dunder: out of a program's reach)
    return out


@lru_cache(maxsize=1)
def reward_modules(forbidden: frozenset[str] = frozenset()) -> dict[str, ReadOnlyModule]:
    """``{"numpy": ..., "math": ...}``: the read-only copies, made once per process.
    ``forbidden``: names the static policy refuses, left out of the copies too."""
    return {"numpy": _freeze(np, forbidden), "math": _freeze(math, forbidden)}


def _by_name(name: str, forbidden: frozenset[str]) -> ReadOnlyModule:
    """This process's read-only copy of module ``name`` (``numpy.linalg``) made leaving out
    ``forbidden``: the same object a reward program's namespace holds here."""
    top, *rest = name.split(".")
    module: Any = reward_modules(forbidden)[top]
    for part in rest:
        module = vars(module)[part]
    return module
