"""One error tree for the cloud link, split by origin so callers can act on it.

ProtocolError: a message (ours or the peer's) does not fit the protocol.
QueueError:    the local durable queue cannot be used.
TransportError: talking to the cloud failed; `retryable` says whether backing
               off and trying again can help.
StateError:    the agent's state folder is missing or inconsistent.
"""
from __future__ import annotations


class CloudlinkError(Exception):
    """Root of every error raised by cloudlink."""


class ProtocolError(CloudlinkError):
    """A message does not fit the protocol."""


class DecodeError(ProtocolError):
    """Bytes that are not a well-formed message (bad JSON, wrong type, too large)."""


class FieldError(ProtocolError):
    """A field is missing or has a value outside its type or range."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class FieldNotAllowedError(FieldError):
    """A detection carries a field the allowlist does not name: it is refused, never uploaded."""

    def __init__(self, field: str) -> None:
        super().__init__("field not in the detection allowlist", field)


class LimitError(ProtocolError):
    """A message exceeds an explicit size or count limit."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class QueueError(CloudlinkError):
    """The durable queue cannot be opened or written."""


class QueueFullError(QueueError):
    """The disk is full: the events being enqueued were not stored (and are counted as lost)."""

    def __init__(self, message: str, lost: int) -> None:
        super().__init__(message)
        self.lost = lost


class StateError(CloudlinkError):
    """The agent's state folder is missing, unreadable or not enrolled."""


class TransportError(CloudlinkError):
    """Talking to the cloud failed."""

    retryable: bool = True


class CloudUnreachableError(TransportError):
    """No connection, a timeout or a 5xx answer: back off and try again."""


class CloudRefusedError(TransportError):
    """The cloud answered and said no (TLS refused, 4xx): retrying the same thing will not help."""

    retryable = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CommandRefusedError(CloudlinkError):
    """A remote command failed verification; `reason` is reported back to the cloud."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class EnrolError(CloudlinkError):
    """Enrolment failed: bad code, CA fingerprint mismatch, unusable answer."""
