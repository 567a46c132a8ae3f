"""One registry class for every pluggable part: models, extractors, readers, splits, targets...

A registry is a decorator and a dict (as Ludwig's `register_encoder`): components register
themselves by name, optionally with the dataclass that types their config, and a lookup of an
unknown name says which names are known (and the closest one).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from likepred.errors import ConfigError


def closest(name, known) -> str:
    """' (did you mean X?)' for the closest known name, else ''."""
    match = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry:
    """Named components of one kind.

    `key` is the config key that picks one (e.g. "model.name"), used in error messages;
    `package`, when given, is imported module by module before the first lookup, so every
    module in it registers its components (adding one = one new module).
    """

    def __init__(self, key: str, package: str | None = None):
        self.key, self.package = key, package
        self._items: dict = {}
        self._schemas: dict = {}
        self._loaded = package is None

    def register(self, name: str, schema: type | None = None):
        """Decorator: `@REG.register("name", schema=SomeConfig)`."""
        def deco(obj):
            self.add(name, obj, schema)
            return obj
        return deco

    def add(self, name: str, obj, schema: type | None = None):
        self._items[name] = obj
        if schema is not None:
            self._schemas[name] = schema

    def _load(self):
        if not self._loaded:
            pkg = importlib.import_module(self.package)
            for mod in pkgutil.iter_modules(pkg.__path__):
                importlib.import_module(f"{self.package}.{mod.name}")
            self._loaded = True  # only once every module registered (a failed import is retried)

    def __contains__(self, name) -> bool:
        self._load()
        return name in self._items

    def names(self) -> list:
        self._load()
        return sorted(self._items)

    def get(self, name):
        self._load()
        if name not in self._items:
            raise ConfigError(f"{self.key}={name!r} is unknown{closest(name, self._items)}; "
                              f"known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def schema(self, name) -> type | None:
        self.get(name)
        return self._schemas.get(name)
