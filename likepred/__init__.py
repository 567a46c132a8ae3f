"""likepred: configuration-driven experiments that predict Instagram likes."""

import os as _os

__version__ = "0.1.0"

# $MLFLOW_TRACKING_URI as the user set it: mlflow.set_tracking_uri overwrites the variable in this
# process, so the store's source (likepred.serving.locate.store_source) is read from this copy.
STORE_ENV_AT_START = _os.environ.get("MLFLOW_TRACKING_URI")

# The packaged configs (likepred/conf, shipped in the wheel); Hydra finds them as pkg://likepred.conf.
CONF_MODULE = "likepred.conf"
