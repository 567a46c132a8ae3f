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


def _origin(obj) -> str:
    """The module that defined `obj` (for a lambda wrapping a builder: the builder's)."""
    wrapped = getattr(obj, "__wrapped__", None)
    return getattr(wrapped or obj, "__module__", None) or "?"


# Plugin packages (top-level names) whose classes a saved model may name (likepred.serving.state);
# filled by likepred.plugins as it imports them and from the `likepred.plugins` entry points.
ENTRY_POINT_GROUP = "likepred.plugins"
TRUSTED_PLUGINS: set = set()


def entry_point_modules() -> list[str]:
    """The modules the installed `likepred.plugins` entry points name (metadata only, nothing imported)."""
    from importlib.metadata import entry_points

    return [ep.value.split(":")[0].strip() for ep in entry_points(group=ENTRY_POINT_GROUP)]


def trusted_plugin(module: str) -> bool:
    """Whether `module` belongs to a plugin package: one imported as a plugin or installed with the entry point."""
    top = module.split(".")[0]
    return top in TRUSTED_PLUGINS or top in {m.split(".")[0] for m in entry_point_modules()}


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
        self._loading = False

    def register(self, name: str, schema: type | None = None):
        """Decorator: `@REG.register("name", schema=SomeConfig)`."""
        def deco(obj):
            self.add(name, obj, schema)
            return obj
        return deco

    def add(self, name: str, obj, schema: type | None = None):
        """Register `obj` as `name`; a name already taken by another module is refused (a plugin
        cannot silently replace a built-in, nor two plugins each other). The same module
        registering again (a reload) replaces its own entry."""
        if not (self._loaded or self._loading):
            self._load()  # the built-ins first: a plugin's clash names the plugin second
        old = self._items.get(name)
        if old is not None and _origin(old) != _origin(obj):
            raise ConfigError(f"{self.key}={name!r} is registered twice: by {_origin(old)} and by {_origin(obj)}; "
                              "rename one of them")
        self._items[name] = obj
        if schema is not None:
            self._schemas[name] = schema

    def _load(self):
        if not self._loaded and not self._loading:
            self._loading = True
            try:
                pkg = importlib.import_module(self.package)
                for mod in pkgutil.iter_modules(pkg.__path__):
                    importlib.import_module(f"{self.package}.{mod.name}")
                self._loaded = True  # only once every module registered (a failed import is retried)
            finally:
                self._loading = False

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
