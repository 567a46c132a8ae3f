"""likepred: configuration-driven experiments that predict Instagram likes."""

__version__ = "0.1.0"
