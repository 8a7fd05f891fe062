"""The root of Garrison's exception tree.

It lives in ``policies`` because that is the bottom of the import graph
(``policies`` <- ``supervisors`` <- ``runtime``): every package can raise or catch it.
"""


class GarrisonError(Exception):
    """Base class of every error Garrison raises on purpose."""
