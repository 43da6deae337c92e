"""`Pulpo`: the object producers publish through and workers run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from pulpo_core.adapter import BatchPublishing, QueueAdapter, UniquePublishing
from pulpo_core.config import Config, check_section, check_ttr_key, load_config
from pulpo_core.errors import AdapterError, ConfigError
from pulpo_core.handlers import HandlerRegistry
from pulpo_core.lease import LeaseKeeper
from pulpo_core.logformat import JOB_FIELDS, job_fields
from pulpo_core.message import DEFAULT_PRIORITY, Message
from pulpo_core.plugins import PulpoPluginManager, build_plugin_manager
from pulpo_core.pool.limits import limit_for, run_limited
from pulpo_core.pool.settings import WorkerSettings, worker_settings
from pulpo_core.registry import (
    AdapterEntry,
    collect_adapters,
    collect_hints,
    create_adapter,
    select_adapter,
)
from pulpo_core.result import Action, Bury, Commit, Drop, Result, Retry

#: How the reason of a job buried for runs that never finished begins (for result policies).
UNFINISHED_RUNS = "unfinished runs"

log = logging.getLogger("pulpo")


class Pulpo:
    """Publish jobs and run workers.

    :param config: a mapping of settings (see the configuration reference), a loaded
        :class:`Config`, or ``None`` for the ``PULPO_CONFIG`` file or the defaults.
    :param plugin_manager: a manager from :func:`pulpo_core.plugins.build_plugin_manager`;
        by default one with every installed plugin.
    :raises ValueError: (a :class:`ConfigError`) naming the key of a bad setting.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | Config | None = None,
        *,
        plugin_manager: PulpoPluginManager | None = None,
    ) -> None:
        self.plugin_manager = plugin_manager or build_plugin_manager()
        self.hook = self.plugin_manager.hook
        self._sections, plugin_keys = self._declarations()
        hints = collect_hints(self.plugin_manager)
        self.config: Config = load_config(config, plugin_keys=plugin_keys, hints=hints)
        self.adapters = collect_adapters(self.plugin_manager)
        self._adapter_entry: AdapterEntry = select_adapter(
            self.adapters, self.config.queue_adapter_type, hints
        )
        self._check_sections()
        #: The checked ``[worker]`` section: the pool's shape and limits.
        self.worker_settings: WorkerSettings = worker_settings(self.config)
        self._apply_deprecated_ttr()
        self.handlers = HandlerRegistry()
        self._collect_handlers()
        self._queue_adapter: QueueAdapter | None = None
        self._slot = threading.local()
        self._adapter_lock = threading.Lock()
        self._stopping = threading.Event()
        self._leases = LeaseKeeper()

    # -- configuration -------------------------------------------------------------------

    def _declarations(self) -> tuple[dict[str, Any], list[type]]:
        """The config sections and the top-level keys the plugins declare."""
        sections: dict[str, Any] = {}
        keys: list[type] = []

        def register(section: str, section_keys: Any) -> None:
            sections[section] = section_keys

        self.hook.pulpo_register_config_sections(register=register, register_keys=keys.append)
        return sections, keys

    def _check_sections(self) -> None:
        declared = self._sections
        adapter_sections = {entry.section for entry in self.adapters.values()}
        for name, section in self.config.sections.items():
            if name in declared:
                check_section(name, section, declared[name])
            elif name not in adapter_sections:
                known = sorted(set(declared) | adapter_sections)
                raise ConfigError(
                    f"unknown configuration section {name!r} (known sections: {', '.join(known)})"
                )

    def _apply_deprecated_ttr(self) -> None:
        """An adapter section's ``ttr`` is the old spelling of the top-level ``ttr``: it still
        sets the lease of jobs published without one, unless the top-level key is given."""
        section = self._adapter_entry.section
        ttr = self.config.sections.get(section, {}).get("ttr")
        if ttr is None:
            return
        if "ttr" in self.config.given:
            log.warning(
                "configuration key '%s.ttr' is deprecated and ignored: the top-level 'ttr' is set",
                section,
            )
            return
        log.warning(
            "configuration key '%s.ttr' is deprecated: set the top-level 'ttr' instead", section
        )
        self.config = attrs.evolve(self.config, ttr=check_ttr_key(f"{section}.ttr", ttr))

    def _collect_handlers(self) -> None:
        def register(request_type: str, handler: object) -> None:
            origin = getattr(handler, "origin", None) or "plugin"
            self.handlers.add(request_type, handler, origin)

        self.hook.pulpo_register_handlers(register=register)
        for request_type, path in self.config.handlers.items():
            self.handlers.add(request_type, path, "config")

    # -- the queue -----------------------------------------------------------------------

    @property
    def queue_adapter(self) -> QueueAdapter:
        """The adapter in use, created on first use from its config section (a pool slot's
        thread has an adapter of its own: see :meth:`new_adapter`)."""
        own: QueueAdapter | None = getattr(self._slot, "adapter", None)
        if own is not None:
            return own
        if self._queue_adapter is None:
            with self._adapter_lock:
                if self._queue_adapter is None:
                    entry = self._adapter_entry
                    self._queue_adapter = create_adapter(entry, self.config.section(entry.section))
        return self._queue_adapter

    def new_adapter(self) -> QueueAdapter:
        """A new adapter from the factory; the calling thread uses it from now on (a pool slot:
        clients such as greenstalk are not thread-safe). Close it with :meth:`drop_adapter`.
        An adapter class that sets ``thread_safe = True`` is shared by every slot instead."""
        if getattr(self.queue_adapter, "thread_safe", False) is True:
            return self.queue_adapter
        entry = self._adapter_entry
        adapter = create_adapter(entry, self.config.section(entry.section))
        self._slot.adapter = adapter
        return adapter

    def drop_adapter(self) -> None:
        """Close the calling thread's own adapter; it uses the shared one again."""
        adapter: QueueAdapter | None = getattr(self._slot, "adapter", None)
        self._slot.adapter = None
        if adapter is not None and adapter is not self._queue_adapter:
            adapter.close()

    def publish(self, message: Message) -> Message:
        """Queue a job; return it with its ``id`` set by the adapter.

        :raises ValueError: naming the field when the message cannot be queued (empty
            request type, a body that is not JSON, a delay after the expiration, ...).
        """
        message = self._prepare(message)
        if message.unique_key is not None:
            return self._enqueue_unique(message)[0]
        return self.queue_adapter.enqueue(message)

    def publish_unique(self, message: Message) -> tuple[Message, bool]:
        """Queue a job with a ``unique_key`` unless a live job holds that key.

        :return: ``(job, created)``: the new job and ``True``, or the job that holds the key
            and ``False`` (nothing was queued).
        :raises ValueError: when the message has no ``unique_key`` or cannot be queued.
        :raises AdapterError: when the adapter cannot publish unique jobs.
        """
        message = self._prepare(message)
        if message.unique_key is None:
            raise ValueError("publish_unique needs a message with a unique_key")
        return self._enqueue_unique(message)

    def _enqueue_unique(self, message: Message) -> tuple[Message, bool]:
        adapter = self.queue_adapter
        if not isinstance(adapter, UniquePublishing):
            # Never a silent duplicate: without the capability the job is refused.
            raise AdapterError(
                f"the {self.config.queue_adapter_type} adapter cannot publish unique jobs, "
                f"so the job with unique_key {message.unique_key!r} was not queued"
            )
        return adapter.enqueue_unique(message)

    def publish_many(self, messages: Iterable[Message]) -> list[Message]:
        """Queue several jobs; return them with their ids, in order.

        Each message is checked and passes the publish hooks as with :meth:`publish`, all of
        them before any is queued. An adapter with ``enqueue_many`` (beanstalkd) then queues
        them in a few round trips instead of one each; others queue them one by one.

        :raises ValueError: naming the message and field when one cannot be queued (none is
            queued then).
        :raises AdapterError: when the queue fails; with ``enqueue_many`` some of the jobs
            may have been queued (the error says which).
        """
        prepared = []
        for number, message in enumerate(messages):
            try:
                prepared.append(self._prepare(message))
            except ValueError as error:
                raise ValueError(f"message {number}: {error}") from None
        adapter = self.queue_adapter
        if any(message.unique_key is not None for message in prepared):
            return [
                adapter.enqueue(m) if m.unique_key is None else self._enqueue_unique(m)[0]
                for m in prepared
            ]
        if isinstance(adapter, BatchPublishing):
            return list(adapter.enqueue_many(prepared))
        return [adapter.enqueue(message) for message in prepared]

    def _prepare(self, message: Message) -> Message:
        """The message as it is queued: its ttr set, the publish hooks applied, checked."""
        if not isinstance(message, Message):
            raise ValueError(f"publish takes a Message, not {type(message).__name__}")
        # The one place a job's lease and priority get their defaults: adapters trust them.
        if message.ttr is None:
            message = message._replace(ttr=self.config.ttr)  # the config's ttr is checked
        if message.priority is None:
            message = message._replace(priority=DEFAULT_PRIORITY)
        message = self.plugin_manager.call_chain(
            "pulpo_before_publish", "message", {"message": message, "app": self}, Message
        )
        message.validate_for_publish()
        return message

    def register_handler(self, request_type: str, handler: object) -> None:
        """Route ``request_type`` to ``handler`` (wins over config and entry points)."""
        self.handlers.add(request_type, handler, "register_handler")

    # -- processing ----------------------------------------------------------------------

    def handle_message(self, message: Message) -> Result:
        """Route one dequeued message to its handler and apply the result to the queue."""
        started = time.monotonic()
        result = self._run(message)
        if result.is_success and result.messages:
            result = self._publish_follow_ups(result)
        action = self._decide(message, result)
        if (
            message.known_attempts is None
            and isinstance(action, Commit | Drop)
            and self.plugin_manager.has_implementations("pulpo_after_process")
        ):
            # Lazily counted attempts (beanstalkd) are gone with the job: read them first, for
            # the observers. Without observers a success costs no such round trip.
            message.attempts  # noqa: B018
        applied = self._apply(message, action)
        duration = time.monotonic() - started
        if applied:
            try:
                self.plugin_manager.call_each(
                    "pulpo_after_process",
                    {
                        "message": message,
                        "result": result,
                        "action": action,
                        "app": self,
                        "duration": duration,
                    },
                )
            except Exception:  # an observer's failure must not stop the worker; it is settled
                log.exception("a pulpo_after_process hook failed on job %s", message.id)
        if not log.isEnabledFor(logging.INFO):  # skip building the arguments (a hot path)
            return result
        fields = job_fields(message, result, action if applied else None, duration)
        log.info(
            "job %s type=%s outcome=%s action=%s attempts=%s duration=%.1fms%s",
            message.id,
            message.request_type,
            result.outcome.value,
            # What really happened to the job: "none" when the adapter changed nothing (the
            # lease ran out and the job went back to the queue, or it was deleted meanwhile).
            type(action).__name__.lower() if applied else "none (no longer held)",
            # Never resolved here: after a commit the job is gone, and asking would cost the
            # round trip lazy attempts save ("?" = a success nobody asked the count of).
            "?" if message.known_attempts is None else message.known_attempts,
            duration * 1000.0,
            f" error={result.error!r}" if result.error else "",
            extra={JOB_FIELDS: fields},
        )
        return result

    def _run(self, message: Message) -> Result:
        try:
            early = self.plugin_manager.call_first(
                "pulpo_before_process", {"message": message, "app": self}
            )
        except Exception as error:
            log.exception("a pulpo_before_process hook failed on job %s", message.id)
            return Result.transient(error)
        if early is not None:
            return early  # type: ignore[no-any-return]
        runs = message.known_attempts  # never asked of the adapter here: that costs a trip
        if runs is not None and runs >= self.config.max_number_of_attempts:
            # Only runs that never finished get here (a failure the handler reported is
            # buried by the policy first): its worker died, or its lease ran out, every time.
            return Result.fatal(
                f"{UNFINISHED_RUNS}: started {runs} time(s) without finishing (its worker died "
                f"or its lease ran out each time), the most allowed"
            )
        handler = self.handlers.get(message.request_type)
        if handler is None:
            return Result.fatal(f"no handler for request type {message.request_type!r}")
        ttr = message.ttr or self.config.ttr
        limit = limit_for(self.worker_settings, message.request_type, handler.target)
        with self._leases.keep(self.queue_adapter, message, ttr):
            if limit > 0 and not handler.is_async:
                return run_limited(handler, message, limit)  # type: ignore[no-any-return]
            return handler(message, limit)

    def _publish_follow_ups(self, result: Result) -> Result:
        try:
            for follow_up in result.messages:
                self.publish(follow_up)
        except Exception as error:
            # The job is not committed, so its follow-ups are published again on the retry.
            return Result.transient(f"follow-up message not published: {error}")
        return result

    def _decide(self, message: Message, result: Result) -> Action:
        arguments = {"message": message, "result": result, "app": self}
        try:
            action = self.plugin_manager.call_first("pulpo_result_policy", arguments)
        except Exception:
            # A broken policy plugin must not leave the job reserved: it is passed over and the
            # next policy decides (in the end the core's default policy, a plugin too).
            log.exception("a pulpo_result_policy hook failed on job %s", message.id)

            def failed(error: BaseException) -> None:
                log.warning("passing over a failing result policy on job %s: %r", message.id, error)

            action = self.plugin_manager.call_first_surviving(
                "pulpo_result_policy", arguments, failed
            )
        assert action is not None, "the default result policy always decides"
        return action  # type: ignore[no-any-return]

    def _apply(self, message: Message, action: Action) -> bool:
        """Apply the action; whether the adapter did (``False``: the job was no longer this
        worker's to settle)."""
        adapter = self.queue_adapter
        if isinstance(action, Commit | Drop):
            done = adapter.commit(message)
        elif isinstance(action, Retry):
            done = adapter.rollback(message, delay=action.delay)
        elif isinstance(action, Bury):
            done = adapter.bury(message, action.reason)
        else:
            raise TypeError(f"a result policy returned {action!r}, not an action")
        return done is not False

    # -- the worker ----------------------------------------------------------------------

    def load_handlers(self) -> None:
        """Import every registered handler (a worker does this as it starts)."""
        self.handlers.load_all()

    def start(self) -> None:
        """Run the worker loop until it shuts down (empty iterations, SIGTERM/SIGINT, stop())."""
        from pulpo_core.worker import run_worker

        run_worker(self)

    def stop(self) -> None:
        """Ask a running ``start()`` to stop after its current job; safe from any thread."""
        self._stopping.set()

    @property
    def stopping(self) -> threading.Event:
        """Set when the worker has been asked to stop."""
        return self._stopping

    def close(self) -> None:
        """Close the adapter."""
        self._leases.close()
        if self._queue_adapter is not None:
            self._queue_adapter.close()
            self._queue_adapter = None

    def __enter__(self) -> Pulpo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
