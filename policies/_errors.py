"""The root of Garrison's exception tree.

It lives in ``policies`` because that is the bottom of the import graph
(``policies`` <- ``supervisors`` <- ``runtime``): every package can raise or catch it.
"""


class GarrisonError(Exception):
    """Base class of every error Garrison raises on purpose."""


class ValidationFailed(GarrisonError, ValueError):
    """Input was refused at the gate; nothing was written.

    ``field`` names the offending field when there is one. It lives here, beside the root,
    so that configuration values of every package (``policies`` included) refuse bad
    values with the same type.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
