"""The one exception type that reaches users as a plain sentence.

Library code raises :class:`CosaEdgeError` for anything a user can fix (a
missing file, a wrong layout, a corrupt checkpoint). The CLI prints its message
without a traceback; everything else is a bug and keeps its traceback.
"""


class CosaEdgeError(Exception):
    """A problem with the user's input or environment, with a message saying what to do."""
