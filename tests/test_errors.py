"""The poll errors: each names a SPEC §6.3 failure reason, checked when the class is made."""

from __future__ import annotations

import pytest

from exporter import errors
from exporter.errors import FAILURE_REASONS, VendorError


def test_every_error_names_a_spec_failure_reason() -> None:
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, VendorError)
    ]
    assert len(classes) == 11
    assert {c.failure_reason for c in classes} <= set(FAILURE_REASONS) - {"none"}


def test_a_subclass_inherits_what_its_class_statement_leaves_out() -> None:
    assert (errors.RequestTimedOut.reason, errors.RequestTimedOut.failure_reason) == (
        "unavailable",
        "timeout",
    )
    assert (errors.TooLarge.reason, errors.TooLarge.failure_reason) == ("bad_response", "too_large")


def test_a_failure_reason_outside_the_spec_is_refused() -> None:
    with pytest.raises(TypeError, match=r"not a SPEC §6\.3 reason"):

        class Misspelt(VendorError, reason="x", failure_reason="timed_out"):
            pass
