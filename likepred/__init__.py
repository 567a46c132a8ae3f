"""likepred: configuration-driven experiments that predict Instagram likes."""

__version__ = "0.1.0"

# The packaged configs (likepred/conf, shipped in the wheel); Hydra finds them as pkg://likepred.conf.
CONF_MODULE = "likepred.conf"
