"""The one exception type for bad user input, and its variant about one item of a list.

`UserError` is what the CLI turns into one line on stderr and exit code 2; any other exception is a bug and
keeps its traceback (`rmteach --debug` shows the traceback of a `UserError` too, with the user code's own
exception chained to it).
"""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""


class ItemError(UserError):
    """A `UserError` about item `index` of a list (a prompt, a scored pair) whose ids only the caller knows.

    The message is `template` with `{item}` replaced by "item <index>"; a caller that knows the ids re-raises
    it through `named`, so the user reads the prompt id instead.

    >>> str(ItemError("reward model 'x' failed on {item}", 3).named(["a", "b", "c", "p7"]))
    "reward model 'x' failed on prompt id 'p7'"
    """

    def __init__(self, template: str, index: int) -> None:
        self.template, self.index = template, index
        super().__init__(template.replace("{item}", f"item {index}"))

    def named(self, ids: "list[str] | tuple[str, ...]", kind: str = "prompt id") -> UserError:
        """The same error naming `ids[index]` (its cause kept, for `--debug`)."""
        err = UserError(self.template.replace("{item}", f"{kind} '{ids[self.index]}'"))
        err.__cause__ = self.__cause__
        return err


def first_line(e: BaseException, empty: str | None = None) -> str:
    """The first line of an exception's message, for a one-line error; `empty` (default: the exception's type
    name) when it has no message.

    >>> first_line(ValueError("bad value\\nmore detail")), first_line(KeyError()), first_line(OSError(), "(none)")
    ('bad value', 'KeyError', '(none)')
    """
    text = str(e).strip()
    return text.splitlines()[0] if text else (type(e).__name__ if empty is None else empty)
