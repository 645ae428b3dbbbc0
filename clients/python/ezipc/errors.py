"""Errors: every failure the hub reports carries an ``EZIPC_...`` code (docs/errors.md)."""


class EzipcError(Exception):
    """An ezipc failure with its code, e.g. ``EZIPC_KEY_EXISTS``."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
