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
UNLABELED_ROWS = ("error", "pool")


@dataclass
class Problems:
    on_bad: str = "error"
    # a table row with no labels (data.unlabeled_rows): error, a bad item as any other; pool, an image
    # of the unlabeled pool (said only by the user: a typo never silently drops an image's labels)
    unlabeled_rows: str = "error"
    items: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    pooled: int = 0  # rows that joined the pool so far

    def __post_init__(self):
        if self.on_bad not in ON_BAD:
            raise ValueError(f"on_bad: must be one of {list(ON_BAD)}, got {self.on_bad!r}")
        if self.unlabeled_rows not in UNLABELED_ROWS:
            raise ValueError(f"unlabeled_rows: must be one of {list(UNLABELED_ROWS)}, got {self.unlabeled_rows!r}")

    def label_less(self, where: str, image: str) -> bool:
        """A row with no labels: True when it joins the pool, else a bad item (raised or recorded)."""
        if self.unlabeled_rows == "pool":
            self.pooled += 1
            return True
        self.bad(where, f"missing labels for {image!r} (data.unlabeled_rows: pool makes such rows unlabeled images)",
                 "bad_label")
        return False

    def bad(self, where: str, problem: str, kind: str) -> None:
        """An item that cannot be used: raise under 'error', record under 'skip'."""
        if self.on_bad == "error":
            raise DatasetError(f"{where}: {problem}")
        self.items.append({"where": where, "problem": problem, "kind": kind})

    def warn(self, where: str, problem: str, kind: str) -> None:
        """Worth knowing, nothing dropped (converted images, identical pixels, ...)."""
        self.warnings.append({"where": where, "problem": problem, "kind": kind})
