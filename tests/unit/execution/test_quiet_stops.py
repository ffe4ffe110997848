"""A task stopped on purpose is not logged as a failure by its Dask worker."""

from __future__ import annotations

import logging

from workbench.execution.worker import _QuietStops


def _compute_failed(exception_text: str) -> logging.LogRecord:
    return logging.LogRecord(
        "distributed.worker",
        logging.ERROR,
        __file__,
        1,
        "Compute Failed\nKey: %s\nState: %s\nTask: %s\nException: %r\nTraceback: %r\n",
        ("key", "executing", "<Task run_packed_task>", exception_text, "tb"),
        None,
    )


def test_a_stopped_task_is_not_logged_but_a_real_failure_is() -> None:
    quiet = _QuietStops()
    pruned = "TaskCancelledError(\"task 'train' stopped: pruned at step 20\")"
    assert quiet.filter(_compute_failed(pruned)) is False
    assert quiet.filter(_compute_failed("ValueError('bad data')")) is True
    other = logging.LogRecord("distributed.worker", logging.INFO, __file__, 1, "hello", (), None)
    assert quiet.filter(other) is True
