"""Named registries of operators, one per kind (mpnn, attention, encoding, norm, pooling).

A registry maps a name to a factory plus a one-line description. Registries are
filled by explicit imports in :mod:`search_spaces.operators`; registering a name
twice or asking for an unknown name is an error that lists the valid names. A name may also be
declared with the module that registers it (:meth:`Registry.provided_by`), imported when the
name is first needed.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Generic, Iterator, Mapping, Optional, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An unknown name was looked up; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: T
    description: str
    capabilities: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # declared at registration

    def can(self, capability: str) -> bool:
        return bool(self.capabilities.get(capability, False))


class Registry(Generic[T]):
    """An explicit name -> factory map for one kind of primitive."""

    def __init__(self, kind: str, noun: Optional[str] = None, capabilities: Optional[Mapping[str, str]] = None,
                 required: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.noun = noun or kind  # how messages name an entry: "mpnn operator", "metric"
        # The capabilities an entry may declare (name -> what it means), and those it must:
        # a misspelt or forgotten one is an error at registration, not a silent False.
        self.capabilities = MappingProxyType(dict(capabilities)) if capabilities is not None else None
        self.required = required
        self._entries: dict[str, Entry[T]] = {}
        self._providers: dict[str, str] = {}  # name -> the module that registers it on import

    def provided_by(self, name: str, module: str) -> None:
        """Declare that importing ``module`` registers ``name``: for a plug-in kept with what it
        plugs into most (NAS-Bench-Graph's canonical form lives with its table evaluator), whose
        import by the registry's own package would invert the packages' order. The module is
        imported when the name is first looked up or the registry is listed."""
        self._providers[name] = module

    def _provide(self, name: Optional[str] = None) -> None:
        for pending in [n for n in self._providers if n not in self._entries and (name is None or n == name)]:
            importlib.import_module(self._providers.pop(pending))

    def register(self, name: str, description: str, **capabilities: Any) -> Callable[[T], T]:
        """Decorator: ``@MPNN.register("gcn", "Kipf & Welling graph convolution")``;
        capabilities are declared here (``attention_dropout=True``) and read with
        :meth:`with_capability` rather than as undeclared class attributes."""

        def add(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.noun} {name!r} is already registered")
            if not description:
                raise ValueError(f"{self.noun} {name!r} needs a description")
            if self.capabilities is not None:
                unknown = sorted(set(capabilities) - set(self.capabilities))
                if unknown:
                    raise ValueError(f"{self.noun} {name!r} declares unknown capabilities {unknown}; "
                                     f"a {self.noun} may declare: {', '.join(self.capabilities)}")
            missing = [c for c in self.required if c not in capabilities]
            if missing:
                raise ValueError(f"{self.noun} {name!r} must declare {', '.join(missing)} at registration")
            self._entries[name] = Entry(name, factory, description, MappingProxyType(dict(capabilities)))
            return factory

        return add

    def get(self, name: str) -> T:
        return self.entry(name).factory

    def entry(self, name: str) -> Entry[T]:
        if name in self._providers:
            self._provide(name)
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownNameError(f"unknown {self.noun} {name!r}{hint}; registered: {', '.join(self.names())}") from None

    def with_capability(self, capability: str) -> list[str]:
        """Names of the entries that declared ``capability``, sorted."""
        return [e.name for e in self if e.can(capability)]

    def without_capability(self, capability: str) -> list[str]:
        """Names of the entries that did not declare ``capability``, sorted."""
        return [e.name for e in self if not e.can(capability)]

    def names(self) -> list[str]:
        return sorted({*self._entries, *self._providers})

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._providers

    def __iter__(self) -> Iterator[Entry[T]]:
        self._provide()
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self.names())
