"""pulpo_file.owners: a claim's token names the claiming process, so a claim whose process is
gone is taken back at once, and only a sure answer counts."""

from __future__ import annotations

import os
import subprocess
import sys

from pulpo_file.owners import claimant, is_gone, owner_token, pid_namespace


def test_a_token_names_this_process_and_its_namespace() -> None:
    token = owner_token("0badcafe")
    assert token.startswith("0badcafe") and "." not in token
    assert claimant(token) == os.getpid()
    assert pid_namespace() != 0  # /proc is there on Linux


def test_tokens_that_cannot_be_read_for_sure_name_nobody() -> None:
    here = pid_namespace()
    assert claimant("0badcafe") is None  # a token of an earlier layout: random only
    assert claimant(f"0badcafep{os.getpid():x}n{here + 1:x}") is None  # another namespace
    assert claimant(f"0badcafep{os.getpid():x}n0") is None
    assert claimant("0badcafepzzn1") is None
    assert claimant(f"0badcafep0n{here:x}") is None


def test_a_process_that_exited_and_was_reaped_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: no process has its id any more (until the id is taken again)
    assert is_gone(child.pid)
    assert not is_gone(os.getpid())
    assert not is_gone(1)  # alive (and, for a user other than root, not ours: still alive)
