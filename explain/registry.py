"""Registry of saliency methods: names to classes (STYLE habit 11).

Views and tasks never import a method class: they name a method, or hand over a stored config
``{"method": name, **params}``, and get an instance from here. The method modules register
themselves on import of :mod:`explain.methods`, which every look-up here triggers. This module
itself imports no torch, so modules that only name methods (selectors, the admin) stay light
until a method is looked up.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from explain.base import SimilaritySaliency

__all__ = ["get_method", "list_methods", "method_config", "method_from_config", "register_method"]

_REGISTRY: dict[str, type[SimilaritySaliency]] = {}
T = TypeVar("T", bound="type[SimilaritySaliency]")


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator adding a :class:`SimilaritySaliency` subclass under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is empty or taken by another class, or the class is not a subclass of
        :class:`SimilaritySaliency`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a method name must be a non-empty string, got {name!r}")

    def decorator(cls: T) -> T:
        from explain.base import SimilaritySaliency  # loaded already by the method's module

        if not (isinstance(cls, type) and issubclass(cls, SimilaritySaliency)):
            raise ValueError(f"{cls!r} is not a SimilaritySaliency subclass")
        if _REGISTRY.get(name, cls) is not cls:
            raise ValueError(f"method {name!r} is already registered")
        _REGISTRY[name] = cls
        cls.method_name = name
        return cls

    return decorator


def _load_methods() -> None:
    import explain.methods  # registers the built-in methods
    import explain.methods.sbsm_coarse_to_fine  # noqa: F401  (an approximation, "sbsm_c2f")


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    _load_methods()
    return sorted(_REGISTRY)


def get_method(name: str) -> type[SimilaritySaliency]:
    """The class registered under ``name``; ValueError listing the valid names otherwise."""
    _load_methods()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; valid names: {sorted(_REGISTRY)}") from None


def method_from_config(config: Mapping[str, Any]) -> SimilaritySaliency:
    """Build ``get_method(config["method"])(**params)`` from ``{"method": name, **params}``."""
    if not isinstance(config, Mapping) or "method" not in config:
        raise ValueError(f"a method config is a mapping with a 'method' key, got {config!r}")
    params = dict(config)
    cls = get_method(params.pop("method"))
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(
            f"unknown parameters {sorted(unknown)} for method {config['method']!r}; "
            f"valid: {sorted(accepted)}"
        )
    return cls(**params)


def method_config(method: SimilaritySaliency) -> dict[str, Any]:
    """``{"method": name, **method.get_config()}``, the inverse of :func:`method_from_config`."""
    name = getattr(type(method), "method_name", None)
    if name is None or _REGISTRY.get(name) is not type(method):
        raise ValueError(f"{type(method).__name__} is not a registered method")
    return {"method": name, **method.get_config()}
