"""One error tree for netconfig, split by stage so callers can map it to an exit code."""
from __future__ import annotations


class NetconfigError(Exception):
    """Base of every netconfig error."""


class ConfigError(NetconfigError):
    """The config file is unreadable or invalid; `key` names the offending setting (dotted path)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class BackendError(NetconfigError):
    """The kernel (netlink, iptables-restore) refused an operation; `operation` says which."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.message = message


class ApplyError(NetconfigError):
    """Apply or verify failed; `rolled_back` says whether the previous state was restored."""

    def __init__(self, stage: str, cause: str, *, rolled_back: bool, rollback_error: str = "") -> None:
        text = f"{stage} failed: {cause}"
        text += "; rolled back to the previous state" if rolled_back else f"; ROLLBACK FAILED: {rollback_error}"
        super().__init__(text)
        self.stage = stage
        self.cause = cause
        self.rolled_back = rolled_back
        self.rollback_error = rollback_error


class PlanError(NetconfigError):
    """The live system cannot take the config (missing port, name clash); nothing was changed."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__("cannot apply, nothing changed: " + "; ".join(problems))
        self.problems = problems
