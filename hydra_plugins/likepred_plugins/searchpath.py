"""The `conf/` folders of installed likepred plugin packages (the `likepred.plugins` entry point)
join Hydra's config search path, after likepred's own: their `model/NAME.yaml` etc. compose as
built-in options do (likepred.plugins). Reads package metadata only; imports no plugin."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class LikepredPluginsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from likepred.config.search import entry_point_search_path

        for path in entry_point_search_path():
            search_path.append(provider="likepred-plugin", path=path)
