"""The harness registry: every module in ``harnesses.adapters`` registers its adapter.

Adding an agent is one new module there (with ``@register``) and one test.
"""

from __future__ import annotations

import importlib
import pkgutil

import harnesses.adapters as package
from harnesses.base import HarnessAdapter, HarnessError

_ADAPTERS: dict[str, type[HarnessAdapter]] = {}
_loaded = False


def register(cls: type[HarnessAdapter]) -> type[HarnessAdapter]:
    _ADAPTERS[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    _loaded = True


def get_adapter(name: str) -> HarnessAdapter:
    _load()
    try:
        return _ADAPTERS[name]()
    except KeyError:
        raise HarnessError(f"unknown harness '{name}'; known: {', '.join(sorted(_ADAPTERS))}") from None


def adapter_names() -> list[str]:
    _load()
    return sorted(_ADAPTERS)

