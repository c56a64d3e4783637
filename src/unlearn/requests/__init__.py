"""Removal requests over time: the ledger, sequential application with verification and rollback."""

from .apply import Outcome, apply_requests, remove_request, verify_state

__all__ = ["Outcome", "apply_requests", "remove_request", "verify_state"]
