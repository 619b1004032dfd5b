"""The one exception type a user is meant to read.

Library code raises :class:`GenseqError` for anything the user can fix (a missing corpus, a file
that is not a model, an impossible setting). The CLI prints its message as one line on stderr and
exits non-zero, without a traceback. Anything else is a bug and keeps its traceback.
"""


class GenseqError(Exception):
    """A problem with the user's input, stated as what is wrong and what to do."""
