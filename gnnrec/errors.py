"""Exceptions that tell the user which file, line or field is wrong."""


class GnnrecError(Exception):
    """Base class of every error gnnrec raises on purpose."""


class DataError(GnnrecError, ValueError):
    """Input data is missing or malformed; the message names the file and line or field."""

    def __init__(self, message: str, path=None, line: int | None = None, field: str | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        self.path, self.line, self.field = path, line, field
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(GnnrecError, ValueError):
    """A configuration key or value is invalid; the message names the key."""


class UnknownIdError(GnnrecError, LookupError):
    """A user or item id that the dataset (or export) does not have; the message names it."""


class Interrupted(GnnrecError):
    """The run was stopped by a signal (a scheduler's SIGTERM); the message says how to resume."""

    exit_code = 143  # 128 + SIGTERM, what schedulers expect from a terminated job
