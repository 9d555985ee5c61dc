"""The one exception type that reaches users as a plain sentence.

Library code raises :class:`CosaEdgeError` for anything a user can fix (a
missing file, a wrong layout, a corrupt checkpoint). The CLI prints its message
without a traceback; everything else is a bug and keeps its traceback.
"""


class CosaEdgeError(Exception):
    """A problem with the user's input or environment, with a message saying what to do."""


class CosaEdgeWarning(UserWarning):
    """Something the user should know that does not stop the work; the CLI prints it as one line."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A library's exception as one line for a message: its first line, or its type where it says nothing.
    tritonclient's exceptions carry their text in ``message()``."""
    text = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    text = (text or "").strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
