"""Errors meant for people: each says what was wrong and what to do.

The entry points catch `LikepredError` and print its message without a
traceback; anything else is a bug and keeps its traceback.
"""


class LikepredError(Exception):
    """Base class for errors caused by input, config or environment."""


class DataError(LikepredError):
    """Bad input data; names the file, the record and the field."""

    def __init__(self, message, file=None, record=None, field=None):
        self.file, self.record, self.field, self.reason = file, record, field, message
        where = ", ".join(
            f"{k} {v}" for k, v in (("file", file), ("post", record), ("field", field)) if v is not None
        )
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(LikepredError):
    """A config value that cannot work; names the option."""


class MissingDependencyError(LikepredError):
    """An optional package is absent; names the extra that installs it."""

    def __init__(self, package, extra, purpose=""):
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"the package '{package}' is needed{what} but is not installed: "
            f"pip install -e '.[{extra}]'"
        )


# Ctrl-C: Python raises KeyboardInterrupt wherever the main thread is, and one raised inside a
# library's callback (a garbage-collection hook) is printed and swallowed. The command's SIGINT
# handler also sets this flag, which the training loop checks after every epoch.
_interrupted = [False]


def interrupt(signum=None, frame=None) -> None:
    """The command's SIGINT handler: note the Ctrl-C and raise KeyboardInterrupt, except inside a
    garbage-collection hook (JAX's), where it would be printed and swallowed: the next epoch raises."""
    _interrupted[0] = True
    if frame is not None and "gc_callback" in frame.f_code.co_name:
        return
    raise KeyboardInterrupt


def check_interrupted() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was noted and swallowed on its way."""
    if _interrupted[0]:
        raise KeyboardInterrupt
