"""Problem policy for ingest: stop at the first bad item, or skip it and list it.

Never a silent drop: with `on_bad="skip"` every skipped item is kept in `items` (written to
ingest_report.json and printed); warnings (nothing skipped) go to `warnings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class DatasetError(ValueError):
    """The dataset is malformed; the message names the file, row or key."""


class SourceError(ValueError):
    """A dataset source cannot be turned into a folder; the message says which and why."""


ON_BAD = ("error", "skip")


@dataclass
class Problems:
    on_bad: str = "error"
    items: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)

    def __post_init__(self):
        if self.on_bad not in ON_BAD:
            raise ValueError(f"on_bad: must be one of {list(ON_BAD)}, got {self.on_bad!r}")

    def bad(self, where: str, problem: str, kind: str) -> None:
        """An item that cannot be used: raise under 'error', record under 'skip'."""
        if self.on_bad == "error":
            raise DatasetError(f"{where}: {problem}")
        self.items.append({"where": where, "problem": problem, "kind": kind})

    def warn(self, where: str, problem: str, kind: str) -> None:
        """Worth knowing, nothing dropped (converted images, identical pixels, ...)."""
        self.warnings.append({"where": where, "problem": problem, "kind": kind})
