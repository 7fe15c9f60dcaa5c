"""Generic e2e helpers: re-exports of the shared harness so scenario tests import one place."""

from operator_harness import Kubectl, unique, wait_for

__all__ = ["Kubectl", "unique", "wait_for"]
