"""The executor: plans a flow, runs only what changed, caches outputs, emits events.

A node's *run key* hashes its own key and its inputs' run keys; model nodes contribute
the identity of the files they resolve to, so an edited weight file re-runs what depends
on it. Draft mode runs a rewritten graph (proxy nodes have other keys, and so has all
that depends on them), so a final result never comes from a draft computation, while
work that is the same in both modes (encoding a prompt) is shared. Evaluation is top-down
from the requested node: a cached node's inputs are never visited.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LightflowError, ProxyInFinalError, RunInterrupted
from .cache import OutputCache
from .context import RunContext
from .events import Event, EventBus, NodeFailed, NodeFinished, NodeStarted, RunFinished, RunStarted
from .node import Node, walk
from .ops import get_op
from .types import MODEL_TYPES

__all__ = ["Executor", "Run"]

log = logging.getLogger("lightflow")


@dataclass
class Run:
    """What one run did: the value, which nodes executed or came from cache, timings."""

    node: Node
    value: Any
    mode: str
    executed: list[Node] = field(default_factory=list)
    cached: list[Node] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    models: list[Any] = field(default_factory=list)
    plan: Any = None
    run_id: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def executed_ops(self) -> list[str]:
        """Op names of the executed nodes, in execution order."""
        return [n.op for n in self.executed]

    @property
    def cached_ops(self) -> list[str]:
        return [n.op for n in self.cached]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def __repr__(self) -> str:
        return (f"<Run {self.mode} {self.node.op}: executed {self.executed_ops}, "
                f"cached {self.cached_ops}, {self.total_seconds:.2f} s>")


class Executor:
    """Runs flows against one output cache and one model pool (the kernel's)."""

    def __init__(self, cache: OutputCache, pool: Any, settings: Any):
        self.cache = cache
        self.pool = pool
        self.settings = settings
        self.bus = EventBus()  # every run's events, for views that watch everything
        self._lock = threading.RLock()
        self._run_ids = 0

    def run(self, root: Node, *, mode: str = "final",
            listeners: Iterable[Callable[[Event], None]] = (),
            stop: threading.Event | None = None) -> Run:
        """Run ``root`` (and whatever it needs that is not cached) and return a :class:`Run`."""
        from .rewrite import prepare

        stop = stop or threading.Event()
        graph_root = prepare(root, mode, self.settings)
        if mode == "final":
            for node in walk(graph_root):
                if get_op(node.op).proxy:
                    raise ProxyInFinalError(
                        "this flow contains a proxy node, which final mode never uses",
                        where=node.label(), fix="remove the proxy node, or run it with "
                                                ".preview() / inside lf.draft()")
        bus = EventBus()
        unsubscribers = [bus.subscribe(fn) for fn in listeners]
        unsubscribers.append(bus.subscribe(self.bus.emit))
        with self._lock:
            self._run_ids += 1
            run = Run(node=root, value=None, mode=mode, run_id=self._run_ids)
            started = time.perf_counter()
            bus.emit(RunStarted(run.run_id, root, mode, sum(1 for _ in walk(graph_root))))
            try:
                keys, models = self._run_keys(graph_root, mode)
                run.models = models
                run.plan = self._plan(graph_root, keys, models)
                run.value = self._evaluate(graph_root, keys, run, bus, stop, mode)
            except KeyboardInterrupt as exc:
                err = RunInterrupted("interrupted (KeyboardInterrupt); nothing partial was cached",
                                     where=root.label())
                bus.emit(RunFinished(run.run_id, root, False, time.perf_counter() - started, err))
                raise err from exc
            except BaseException as exc:
                bus.emit(RunFinished(run.run_id, root, False, time.perf_counter() - started, exc))
                raise
            else:
                bus.emit(RunFinished(run.run_id, root, True, time.perf_counter() - started))
                return run
            finally:
                for unsubscribe in unsubscribers:
                    unsubscribe()

    # ------------------------------------------------------------------ planning
    def _run_keys(self, root: Node, mode: str) -> tuple[dict[str, str], list[Any]]:
        """Run key of every node; model nodes are resolved (cheap: file metadata only)."""
        keys: dict[str, str] = {}
        resolved: dict[str, Any] = {}
        models: list[Any] = []
        for node in walk(root):
            spec = get_op(node.op)
            if spec.output in MODEL_TYPES:
                inputs = {name: resolved[child.key] for name, child in node.inputs.items()}
                ref = spec.run(_ResolveContext(node, self), inputs, node.params)
                resolved[node.key] = ref
                models.append(ref)
                salt = getattr(ref, "identity", repr(ref))
            else:
                # no mode salt: draft rules replace every node whose work differs in draft
                # mode (and so, through keys, everything downstream); identical nodes share
                salt = ""
            parts = [salt, node.key] + [f"{name}={keys[child.key]}"
                                        for name, child in sorted(node.inputs.items())]
            keys[node.key] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
        self._resolved = resolved
        return keys, models

    def _plan(self, root: Node, keys: dict[str, str], models: list[Any]) -> Any:
        specs = []
        for node in self._to_execute(root, keys):
            op = get_op(node.op)
            if op.needs is None:
                continue
            refs = {name: self._resolved[child.key] for name, child in node.inputs.items()
                    if child.key in self._resolved}
            specs.extend(op.needs(refs, node.params))
        if not specs:
            return None
        plan = self.pool.plan(specs)
        for warning in plan.warnings:
            log.warning("plan: %s", warning)
        return plan

    def _to_execute(self, root: Node, keys: dict[str, str]) -> list[Node]:
        out: list[Node] = []
        seen: set[str] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if node.key in seen:
                continue
            seen.add(node.key)
            if get_op(node.op).output in MODEL_TYPES or keys[node.key] in self.cache:
                continue
            out.append(node)
            stack.extend(node.inputs.values())
        return out

    # ------------------------------------------------------------------ running
    def _evaluate(self, root: Node, keys: dict[str, str], run: Run, bus: EventBus,
                  stop: threading.Event, mode: str) -> Any:
        values: dict[str, Any] = {}

        def value_of(node: Node) -> Any:
            if node.key in values:
                return values[node.key]
            if node.key in self._resolved:
                return self._resolved[node.key]
            rkey = keys[node.key]
            uncached = "uncached" in get_op(node.op).tags
            hit, value = (False, None) if uncached else self.cache.get(rkey)
            if hit:
                run.cached.append(node)
                bus.emit(NodeFinished(run.run_id, node, 0.0, True))
                values[node.key] = value
                return value
            inputs = {name: value_of(child) for name, child in node.inputs.items()}
            if stop.is_set():
                raise RunInterrupted("stopped before it started", where=node.label())
            ctx = RunContext(run_id=run.run_id, node=node, mode=mode, bus=bus, pool=self.pool,
                             stop=stop, settings=self.settings)
            bus.emit(NodeStarted(run.run_id, node))
            started = time.perf_counter()
            try:
                value = get_op(node.op).run(ctx, inputs, node.params)
            except LightflowError as exc:
                bus.emit(NodeFailed(run.run_id, node, exc))
                raise
            except KeyboardInterrupt:
                bus.emit(NodeFailed(run.run_id, node, RunInterrupted("interrupted")))
                raise
            except Exception as exc:
                bus.emit(NodeFailed(run.run_id, node, exc))
                raise LightflowError(f"{type(exc).__name__}: {exc}", where=node.label(),
                                     fix="see the chained exception above") from exc
            finally:
                ctx.release_models()
            seconds = time.perf_counter() - started
            if not uncached:
                self.cache.put(rkey, value)
            values[node.key] = value
            run.executed.append(node)
            run.seconds[node.key] = seconds
            if ctx.info:
                run.info[node.key] = ctx.info
            bus.emit(NodeFinished(run.run_id, node, seconds, False))
            return value

        return value_of(root)


class _ResolveContext:
    """The context model ops get when resolved at planning time (no pool access)."""

    def __init__(self, node: Node, executor: Executor):
        self.node = node
        self.settings = executor.settings
        self.mode = "resolve"
