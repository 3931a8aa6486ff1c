"""Progress outside notebooks: a tqdm bar per sampling node, and log lines per node.

Nothing here imports ipywidgets or IPython (tqdm's plain console bar is used).

    >>> import lightflow as lf
    >>> from lightflow.widgets.progress import TqdmProgress, log_events
    >>> flow.run(on_event=TqdmProgress())          # doctest: +SKIP
    sample: 100%|██████████| 20/20 [00:01<00:00, 15.2step/s]
    >>> unsubscribe = lf.get_executor().bus.subscribe(log_events)   # every run, logged
"""

from __future__ import annotations

import logging
from typing import IO, Any

from tqdm.std import tqdm

from ..errors import RunInterrupted
from ..graph.events import (
    Event,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    RunFinished,
    RunStarted,
    StepEvent,
)

__all__ = ["TqdmProgress", "log_events"]

log = logging.getLogger("lightflow.progress")


class TqdmProgress:
    """An ``on_event`` listener drawing one tqdm bar per sampling node.

    ``file`` is where bars go (stderr by default); ``leave`` keeps finished bars; extra
    keyword arguments go to ``tqdm``. ``bars`` keeps every bar made (for inspection).
    """

    def __init__(self, *, file: IO[str] | None = None, leave: bool = True, **tqdm_kwargs: Any):
        self.file = file
        self.leave = leave
        self.tqdm_kwargs = tqdm_kwargs
        self.bars: list[tqdm] = []
        self._bar: tqdm | None = None
        self._node: str | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            key = event.node.key if event.node is not None else None
            if self._bar is None or key != self._node:
                self._close()
                desc = event.node.op if event.node is not None else "sample"
                self._bar = tqdm(total=event.total, desc=desc, unit="step", file=self.file,
                                 leave=self.leave, **self.tqdm_kwargs)
                self.bars.append(self._bar)
                self._node = key
            self._bar.total = event.total
            self._bar.update(event.step - self._bar.n)
        elif isinstance(event, (NodeFinished, NodeFailed, RunFinished)):
            if isinstance(event, RunFinished) and isinstance(event.error, RunInterrupted):
                if self._bar is not None:
                    self._bar.set_postfix_str("stopped")
            if not isinstance(event, NodeFinished) or event.node is None or \
                    event.node.key == self._node:
                self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._node = None


def log_events(event: Event) -> None:
    """A listener that logs runs and nodes on the ``lightflow.progress`` logger."""
    if isinstance(event, RunStarted):
        log.info("run %d (%s) started: %d nodes", event.run_id, event.mode, event.total_nodes)
    elif isinstance(event, NodeStarted) and event.node is not None:
        log.debug("run %d: %s started", event.run_id, event.node.label())
    elif isinstance(event, NodeFinished) and event.node is not None:
        log.info("run %d: %s %s (%.3f s)", event.run_id, event.node.op,
                 "cached" if event.cached else "done", event.seconds)
    elif isinstance(event, NodeFailed) and event.node is not None:
        log.warning("run %d: %s failed: %s", event.run_id, event.node.label(), event.error)
    elif isinstance(event, StepEvent) and event.node is not None:
        log.debug("run %d: %s step %d/%d", event.run_id, event.node.op, event.step, event.total)
    elif isinstance(event, RunFinished):
        if event.ok:
            log.info("run %d finished in %.2f s", event.run_id, event.seconds)
        else:
            log.warning("run %d ended after %.2f s: %s", event.run_id, event.seconds,
                        event.error)
