"""`drop_guard:` a listing that collapsed is not believed until it is seen again.

An API that answers an empty (or a tenth of the) listing during an incident of its own would
otherwise wipe every connector's series, and the alerts that watch them, in one poll.
"""

from __future__ import annotations

from exporter.accounts import DropGuard
from exporter.errors import SuspiciousDrop


class DropGuardState:
    """One account's guard: how many suspicious listings in a row it has held."""

    def __init__(self, guard: DropGuard | None) -> None:
        self.guard = guard
        self.held = 0

    def check(self, last_good: int | None, current: int) -> SuspiciousDrop | None:
        """The error that holds this listing, or None when it is to be published."""
        guard = self.guard
        if guard is None or not last_good or current >= last_good * (1 - guard.max_drop):
            self.held = 0
            return None
        self.held += 1
        if self.held >= guard.confirm_polls:
            self.held = 0  # seen on enough polls in a row: this is the truth now
            return None
        return SuspiciousDrop(
            f"listing shrank from {last_good} to {current} connectors (more than "
            f"{guard.max_drop:.0%}); last good listing kept, held {self.held} of "
            f"{guard.confirm_polls} polls"
        )
