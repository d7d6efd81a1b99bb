"""One error type for every bad input, so callers can show a message instead of a traceback."""


class InputError(ValueError):
    """A bad value given by a person: names the field and says what is allowed."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
