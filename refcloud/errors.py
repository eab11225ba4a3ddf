"""One error tree for the reference cloud."""
from __future__ import annotations


class RefcloudError(Exception):
    """Root of every error raised by refcloud."""


class CloudStateError(RefcloudError):
    """The cloud's state folder is missing, unreadable or inconsistent."""


class EnrolmentRefused(RefcloudError):
    """A code that is unknown, used or expired, or a CSR that cannot be signed."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code          # stable machine-readable reason sent to the agent


class DeviceRefused(RefcloudError):
    """A client certificate that is valid for TLS but names no current device (re-enrolled, unknown)."""


class NoClientCert(RefcloudError):
    """A device endpoint was called over TLS without a client certificate."""


class PublishRefused(RefcloudError):
    """A definitions package cannot be published: bad version, not newer than the current one, too large."""


class BadParameter(RefcloudError):
    """A portal API query parameter or an operator's input (customer name) that is not acceptable."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
