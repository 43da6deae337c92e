"""The ``file_queue_adapter`` configuration section and its defaults."""

from __future__ import annotations

import attrs

from pulpo_core.config import at_least, between, more_than, one_of
from pulpo_core.message import MAX_TTR

#: The section the ``file`` adapter reads, whichever alias selected it.
SECTION = "file_queue_adapter"
#: Where the queue lives when ``base_path`` is not set: relative to the current directory, so a
#: worker started in a project folder uses that project's queue.
DEFAULT_BASE_PATH = ".pulpo/queue"


@attrs.frozen
class FileQueueConfig:
    """The keys of ``[file_queue_adapter]``; unknown keys and bad values name the key."""

    #: The queue's folder; relative paths count from the current directory, ``~`` is expanded.
    base_path: str = DEFAULT_BASE_PATH
    #: Make every job safe from a power cut before ``publish`` (and every retry, burial and
    #: kick) returns.
    fsync: bool = True
    #: How, with ``fsync``: ``"log"`` writes a single publish's record in place into a
    #: preallocated publish log of the process's own, and a worker makes it a file (see
    #: :mod:`pulpo_file.publog`), everything else as ``"journal"``; ``"journal"`` flushes one
    #: record holding the job to the journal (a sequential log, one ``fdatasync``); ``"files"``
    #: flushes the job's own file and folder.
    fsync_method: str = attrs.field(default="log", validator=one_of("log", "journal", "files"))
    #: With ``fsync_method = "files"``: also flush the folder a job was renamed into.
    fsync_folder: bool = True
    #: Keep successful jobs in ``archive/`` instead of deleting them.
    enable_archive: bool = False
    #: Deprecated spelling of the top-level ``ttr`` (the core reads it; see
    #: ``Pulpo._apply_deprecated_ttr``): the adapter itself trusts each job's own ``ttr``.
    ttr: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(between(1, MAX_TTR, "seconds"))
    )
    #: Seconds between two looks for expired leases (reserved jobs whose worker died).
    lease_check_interval: float = attrs.field(default=1.0, validator=more_than(0))
    #: Seconds between two full rebuilds of a worker's index from the ``ready/`` folder.
    rescan_interval: float = attrs.field(default=60.0, validator=more_than(0))
    #: Bytes after which the publish journal starts a new segment (old ones are removed).
    journal_segment_size: int = attrs.field(default=4 * 1024 * 1024, validator=at_least(4096))
    #: With ``fsync_method = "log"``: the most bytes a publish log grows to (the first is 1 MiB,
    #: each new one twice the largest; one per process publishing at the same time, more while
    #: workers lag behind; a job of up to 4 KiB takes 4 KiB of one until it is a flushed file).
    publish_log_size: int = attrs.field(default=16 * 1024 * 1024, validator=at_least(65536))
    #: Finished job files kept in ``spare/`` to be rewritten by later jobs (0: never reuse).
    max_spare_files: int = 20_000
    #: Seconds a spare file may wait for reuse before it is removed.
    spare_ttl: float = attrs.field(default=600.0, validator=more_than(0))
