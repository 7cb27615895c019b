"""The one error type for bad input anywhere in rdmarig.

It lives in `scenarios` because every room may import scenarios. The CLI turns it into a single
line on stderr and exit code 2; it never reaches the user as a traceback.
"""


class InputError(Exception):
    """Bad input or an unmet precondition the user can fix.

    `cause` says what is wrong (naming the file/field/device), `fix` says what to do about it.
    """

    exit_code = 2

    def __init__(self, cause: str, fix: str = ""):
        self.cause = cause
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.cause}; {self.fix}" if self.fix else self.cause
