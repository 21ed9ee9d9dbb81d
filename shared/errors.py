"""The product's one root error: everything acctsync raises on purpose derives from it.

A caller that wants to tell acctsync's own refusals from a bug catches `AcctsyncError`; each
subclass's message says what happened and what to do about it. Errors that are also a
`ValueError` or `RuntimeError` keep that base too, so existing `except ValueError` sites go on
working.
"""


class AcctsyncError(Exception):
    """Something acctsync refused or could not do, with a message that says what to do."""


class RequestRefused(AcctsyncError, ValueError):
    """A request refused for a reason a caller can test: `code` is that word (the API answers
    it as its error code), and the message says what to send instead."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
