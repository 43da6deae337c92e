"""The pulpo demo (`nox -s demo`): sample jobs through a worker on the embedded file queue.

In a fresh temporary folder with a copy of `demo.toml`, it runs the real commands and shows each
one as you would type it: publishes jobs of several priorities, a delayed job, a job that expires
before the worker reaches it and jobs that fail (the handlers come from pulpo-samples); runs a
worker, which prints its banner and stops by itself once the queue stays empty; shows the expired
job, buried with its reason; and ends with the queue's stats.

    python examples/demo.py           # the folder is removed at the end
    python examples/demo.py --keep    # keep it, to look around with the same commands
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = "demo.toml"
EXPIRES_AFTER = 1.0  # seconds: the expiring job is gone stale before the worker starts


class DemoFailed(Exception):
    """A command failed or the queue did not end as the demo expects."""


def pulpo_command() -> list[str]:
    """The `pulpo` script of this interpreter's environment (else `python -m pulpo_core`)."""
    script = Path(sys.executable).with_name("pulpo")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pulpo_core"]


class Shell:
    """Runs `pulpo --config demo.toml ...` in the demo folder, showing each command first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pulpo = pulpo_command()

    def say(self, text: str) -> None:
        print(f"\n# {text}", flush=True)

    def run(self, *args: str, show: bool = True) -> str:
        if show:
            print(f"$ pulpo --config {CONFIG} {shlex.join(args)}", flush=True)
        done = subprocess.run(
            [*self.pulpo, "--config", CONFIG, *args],
            cwd=self.folder, stdout=subprocess.PIPE, text=True, timeout=120, check=False,
        )
        if show:
            print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            raise DemoFailed(f"`pulpo {shlex.join(args)}` exited {done.returncode}")
        return done.stdout

    def publish(self, request_type: str, *options: str) -> str:
        """Publish one job; return its id."""
        return self.run("publish", "--request-type", request_type, *options).split()[0]

    def worker(self) -> None:
        """The worker writes straight to this terminal: banner and job output on stdout, log
        lines on stderr."""
        print(f"$ pulpo --config {CONFIG} worker", flush=True)
        done = subprocess.run([*self.pulpo, "--config", CONFIG, "worker"], cwd=self.folder,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise DemoFailed(f"`pulpo worker` exited {done.returncode}")


def demo(shell: Shell) -> None:
    shell.say(f"A job that expires {EXPIRES_AFTER:g} s from now: the worker will come too late.")
    expiring = shell.publish("echo", "--payload", "too late for me", "--expiration",
                             f"{EXPIRES_AFTER:g}")
    expires_at = time.monotonic() + EXPIRES_AFTER

    shell.say("A job that may run only 3 s from now.")
    shell.publish("echo", "--payload", "I waited three seconds", "--delay", "3")

    shell.say("Jobs of several priorities: 0 is the most urgent; the worker takes them in order.")
    shell.publish("echo", "--payload", "routine report (priority 1000)", "--priority", "1000")
    shell.publish("lower", "--payload", "PLEASE KEEP IT DOWN (priority 500)", "--priority", "500")
    shell.publish("upper", "--payload", "disk almost full (priority 0)", "--priority", "0")
    shell.publish("greet", "--body", json.dumps({"name": "world"}), "--priority", "100")

    shell.say("Jobs that fail: fatally (buried at once), transiently (retried, then buried), and "
              "at random.")
    shell.publish("always_succeed")
    shell.publish("always_fail")
    shell.publish("always_transient")
    shell.run("publish", "--request-type", "fifty_fifty", "--count", "3")

    time.sleep(max(0.0, expires_at - time.monotonic()) + 0.1)
    shell.say("A worker, with the banner on; it stops once the queue stays empty.")
    shell.worker()

    shell.say("The expired job was buried, never run.")
    buried = json.loads(shell.run("peek", expiring))
    reason = str(buried["header"].get("buried_reason", ""))
    if not reason.startswith("expired"):
        raise DemoFailed(f"job {expiring} should be buried as expired, its reason is {reason!r}")

    shell.say("What is left in the queue: the buried jobs, for an operator to kick or delete.")
    shell.run("stats")
    counts = json.loads(shell.run("stats", "--json", show=False))
    left = {state: counts[state] for state in ("ready", "delayed", "reserved")}
    # expired + always_fail + always_transient, and each fifty_fifty that lost 3 times in a row
    if any(left.values()) or not 3 <= counts["buried"] <= 6:
        raise DemoFailed(f"the queue should hold only 3 to 6 buried jobs, it holds {counts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the pulpo demo in a temporary folder.")
    parser.add_argument("--keep", action="store_true", help="keep the demo folder at the end")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="pulpo-demo-"))
    shutil.copy(HERE / CONFIG, folder / CONFIG)
    print(f"# The demo runs in {folder}, with {CONFIG} (a copy of examples/{CONFIG}).")
    try:
        demo(Shell(folder))
    except (DemoFailed, subprocess.TimeoutExpired) as error:
        print(f"\ndemo: failed: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"\n# Kept {folder}: cd there and try `pulpo --config {CONFIG} stats`.")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print("\n# Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
