"""Why a trace store cannot be read, whatever its engine: every message names the store
(a file path, or a URL with its password masked) and says what to do."""


class StoreError(Exception):
    """A trace store cannot be read; the message says why and what to do."""


class StoreNotFound(StoreError):
    pass


class StoreCorrupt(StoreError):
    pass


class StoreLocked(StoreError):
    pass
