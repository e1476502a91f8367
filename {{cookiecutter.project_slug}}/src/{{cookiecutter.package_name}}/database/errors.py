"""Database failures that pages turn into a clear message instead of a traceback."""


class DatabaseBusyError(RuntimeError):
    """No pooled connection became free within DB_POOL_TIMEOUT."""


class DatabaseUnavailableError(RuntimeError):
    """The primary database cannot be reached."""
