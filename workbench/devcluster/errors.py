"""The dev cluster's errors; each says what to do about it."""

from __future__ import annotations

from workbench.errors import WorkbenchError


class DevClusterError(WorkbenchError):
    """A dev cluster cannot be started, found or stopped as asked."""

    exit_code = 2


class DevClusterRunningError(DevClusterError):
    """`up` was asked while the dev cluster recorded in the state file still runs."""


class DevClusterStartError(DevClusterError):
    """A part of the dev cluster did not come up; what had started was stopped again."""

    exit_code = 1


class MissingProgramError(DevClusterError):
    """A server program the dev cluster needs (redis-server, the Kafka broker) is missing."""
