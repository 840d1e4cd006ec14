"""Errors meant for people: each names the file, the field and what is wrong."""

from __future__ import annotations

from pathlib import Path


class PodarchiveError(Exception):
    """A problem a producer can fix, located in a file and (where it applies) a field."""

    def __init__(self, path: Path | str, field: str | None, message: str):
        super().__init__(path, field, message)
        # An address (a feed, a download) is named as it is written, not as a path.
        self.path: Path | str = path if isinstance(path, str) and "://" in path else Path(path)
        self.field = field
        self.message = message

    def noting(self, note: str) -> PodarchiveError:
        """The same problem, with what was done about it."""
        return PodarchiveError(self.path, self.field, f"{self.message} ({note})")

    def located(self, root: Path | None = None) -> str:
        """The message with its path shown relative to ``root`` when it lies inside it."""
        shown = self.path
        if root is not None and isinstance(self.path, Path):
            try:
                # The folders resolved, not the file itself: a link is named as the link.
                shown = (self.path.parent.resolve() / self.path.name).relative_to(Path(root).resolve())
            except ValueError:
                pass
        parts = [str(shown)]
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def lines(self, root: Path | None = None) -> list[str]:
        """One line per problem, each naming its file."""
        return [self.located(root)]

    def __str__(self) -> str:
        return self.located()


class InvalidFile(PodarchiveError):
    """Every problem found in one file, so a producer can fix them all in one pass."""

    def __init__(self, problems: list[PodarchiveError]):
        first = problems[0]
        super().__init__(first.path, first.field, first.message)
        self.problems = problems

    def lines(self, root: Path | None = None) -> list[str]:
        return [problem.located(root) for problem in self.problems]

    def located(self, root: Path | None = None) -> str:
        return "\n".join(self.lines(root))
