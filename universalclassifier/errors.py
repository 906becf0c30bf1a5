"""Exceptions for user mistakes: the command line prints them as one line, without a traceback."""


class UserInputError(ValueError):
    """Input from the user (paths, arguments, data) that cannot be used as given."""


class TaskValidationError(UserInputError):
    """A raw task folder failed validation; the message lists every problem found."""

    def __init__(self, task_folder: str, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"Task folder {task_folder} has {len(self.problems)} problem(s); fix them and run again:\n{lines}"
        )
