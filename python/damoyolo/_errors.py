"""The exceptions damoyolo raises: one per library error code (``damoyolo::ErrorCode``).

Each also derives from the built-in exception a Python user would catch for
that situation, so ``except FileNotFoundError`` or ``except ValueError`` work
as well as ``except damoyolo.Error``. ``err.code`` is the library's code name
(``"NotFound"``, ``"InvalidArgument"``, ...); ``str(err)`` its message.
"""


class Error(RuntimeError):
    """Any error reported by the damoyolo library."""

    code: str = "Internal"


class NotFoundError(Error, FileNotFoundError):
    """A file (model, image, video, labels) or a tensor name does not exist."""


class InvalidArgumentError(Error, ValueError):
    """A value passed in is wrong: an option, an array's shape or dtype."""


class OutOfRangeError(Error, ValueError):
    """A size beyond what the runtime accepts (a huge image, a batch too large)."""


class ParseError(Error, ValueError):
    """Bytes are not what they claim to be: a corrupt model, image or video."""


class UnsupportedError(Error):
    """Valid input the runtime does not implement (an operator, opset or format)."""


class FileError(Error, OSError):
    """Reading or writing failed, or the path is not a regular file."""


# Shown as damoyolo.NotFoundError etc. in tracebacks (the package re-exports them).
for _cls in (Error, NotFoundError, InvalidArgumentError, OutOfRangeError, ParseError, UnsupportedError, FileError):
    _cls.__module__ = "damoyolo"
del _cls
