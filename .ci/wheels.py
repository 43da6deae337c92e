"""The design card's `pip install pulpo-core pulpo-beanstalkd`, from this repository's wheels.

Run by `nox -s wheels` (which installs `build`):

1. builds a wheel of every distribution (the root and each `plugins/*/`), or takes them from
   `--wheel-dir`, and checks each holds its package with `py.typed` and the entry points its
   `pyproject.toml` declares;
2. makes a fresh virtual environment and installs `pulpo-core` and `pulpo-beanstalkd` from those
   wheels (their third-party dependencies come from the package index);
3. starts a real beanstalkd on a free loopback port with a temporary binlog, publishes a job with
   that environment's `pulpo` command and runs a worker that hands it to a handler from a small
   module, and checks the handler ran.

Exits 0 when all went well, else 1 with one line saying what failed. Everything it starts or
writes lives in a temporary folder and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = [ROOT, *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]
INSTALLED = ("pulpo-core", "pulpo-beanstalkd")
HANDLER_MODULE = '''\
"""The job the wheels check runs: writes its payload into the file the body names."""

from pathlib import Path


def handle(message):
    Path(message.body["out"]).write_text(message.payload, encoding="utf-8")
'''


class Failed(Exception):
    """One step failed; the message says which and why."""


def run(command: Sequence[str | Path], *, timeout: float = 600, **kwargs: object) -> str:
    """Run a command; return its stdout, or fail with its output."""
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        shown = " ".join(str(part) for part in command)
        raise Failed(f"`{shown}` exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return str(done.stdout)


def step(text: str) -> None:
    print(f"wheels: {text}", flush=True)


# -- 1. wheels -------------------------------------------------------------------------------


def project_of(folder: Path) -> dict[str, object]:
    with (folder / "pyproject.toml").open("rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


def wheel_of(name: str, folder: Path) -> Path:
    """The one wheel of distribution ``name`` in ``folder``."""
    found = sorted(folder.glob(f"{name.replace('-', '_')}-*-py3-none-any.whl"))
    if len(found) != 1:
        raise Failed(f"expected one wheel of {name} in {folder}, found {[p.name for p in found]}")
    return found[0]


def build_wheels(out: Path, built: Path | None = None) -> dict[str, Path]:
    """Distribution name -> its wheel, built into ``out`` unless ``built`` already holds them
    (`nox -s wheels` passes the folder the release checks built them in)."""
    wheels = {}
    for folder in DISTRIBUTIONS:
        project = project_of(folder)
        name = str(project["name"])
        if built is None:
            step(f"building the wheel of {name}")
            run([sys.executable, "-m", "build", "--wheel", "--outdir", out, folder])
        wheel = wheel_of(name, built or out)
        check_wheel(wheel, project)
        wheels[name] = wheel
    return wheels


def check_wheel(wheel: Path, project: dict[str, object]) -> None:
    """The wheel holds its package with py.typed, and the entry points declared in pyproject."""
    package = str(project["name"]).replace("-", "_")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        if f"{package}/py.typed" not in names:
            raise Failed(f"{wheel.name} has no {package}/py.typed")
        declared = project.get("entry-points", {})
        assert isinstance(declared, dict)
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        text = archive.read(entry_points).decode() if entry_points else ""
        for group in declared:
            if f"[{group}]" not in text:
                raise Failed(f"{wheel.name} lacks the entry-point group {group!r}")


# -- 2. a fresh environment ------------------------------------------------------------------


def make_environment(folder: Path, wheels: dict[str, Path]) -> Path:
    """A new virtual environment with INSTALLED from the wheels; returns its bin folder."""
    missing = [name for name in INSTALLED if name not in wheels]
    if missing:
        raise Failed(f"no wheel of {', '.join(missing)}: is plugins/{missing[0]} there?")
    step(f"making a fresh virtual environment in {folder}")
    run([sys.executable, "-m", "venv", folder])
    bin_folder = folder / ("Scripts" if os.name == "nt" else "bin")
    step(f"installing {' and '.join(INSTALLED)} from the wheels")
    # The wheel files themselves, so an index can never offer another build of pulpo.
    run([bin_folder / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--find-links", wheels[INSTALLED[0]].parent, *(wheels[name] for name in INSTALLED)])
    return bin_folder


def check_environment(bin_folder: Path, venv: Path, cwd: Path) -> None:
    """Both distributions are installed in the new environment, from wheels, not from here."""
    probe = (
        "import importlib.metadata as m, json, sys, pulpo_core, pulpo_beanstalkd\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps({\n"
        "    'files': [pulpo_core.__file__, pulpo_beanstalkd.__file__],\n"
        "    'dists': {d: [m.version(d), m.distribution(d).read_text('direct_url.json')]\n"
        "              for d in names},\n"
        "}))\n"
    )
    found = json.loads(run([bin_folder / "python", "-c", probe, json.dumps(INSTALLED)], cwd=cwd))
    for path in found["files"]:
        if not Path(path).resolve().is_relative_to(venv.resolve()):
            raise Failed(f"the new environment imports {path}, outside itself")
    for name, (version, direct_url) in found["dists"].items():
        if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"):
            raise Failed(f"{name} {version} is installed editable, not from its wheel")
    plugins = run([bin_folder / "pulpo", "plugins"], cwd=cwd)
    if "pulpo-beanstalkd" not in plugins:
        raise Failed(f"`pulpo plugins` does not list pulpo-beanstalkd:\n{plugins}")


# -- 3. a job through a real beanstalkd ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def beanstalkd(binlog: Path) -> Iterator[int]:
    """A beanstalkd on a free loopback port; yields the port; stops the server at the end."""
    binary = shutil.which("beanstalkd") or next(
        (p for p in ("/usr/bin/beanstalkd", "/usr/sbin/beanstalkd") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        raise Failed("beanstalkd is not installed (apt-get install beanstalkd)")
    port = free_port()
    binlog.mkdir()
    server = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-b", str(binlog)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if server.poll() is not None:
                error = server.stderr.read().decode() if server.stderr else ""
                raise Failed(f"beanstalkd did not start on port {port}: {error}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise Failed(f"beanstalkd did not answer on port {port} within 10 s") from None
                time.sleep(0.05)
        step(f"beanstalkd is up on port {port}")
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_a_job(bin_folder: Path, work: Path, port: int) -> None:
    (work / "wheel_job.py").write_text(HANDLER_MODULE, encoding="utf-8")
    (work / "pulpo.toml").write_text(
        'queue_adapter_type = "beanstalkd"\n'
        "shutdown_after_number_of_empty_iterations = 2\n"
        "sleep_duration = 0.1\n"
        "[handlers]\n"
        'wheel_check = "wheel_job:handle"\n'
        "[beanstalkd_queue_adapter]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        'default_tube = "wheels"\n',
        encoding="utf-8",
    )
    out = work / "ran.txt"
    token = f"ran from the wheels at {time.time():.0f}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULPO_")}
    env["PYTHONPATH"] = str(work)  # where the handler module is
    pulpo: list[str | Path] = [bin_folder / "pulpo", "--config", work / "pulpo.toml"]
    step("publishing a job with the new environment's pulpo command")
    job_id = run([*pulpo, "publish", "--request-type", "wheel_check", "--payload", token,
                  "--body", json.dumps({"out": str(out)})], cwd=work, env=env).strip()
    step(f"running a worker for job {job_id}")
    run([*pulpo, "worker"], cwd=work, env=env, timeout=120)
    if not out.is_file() or out.read_text(encoding="utf-8") != token:
        raise Failed(f"the worker did not run job {job_id}: {out} was not written")
    stats = json.loads(run([*pulpo, "stats", "--json"], cwd=work, env=env))
    left = {state: stats[state] for state in ("ready", "delayed", "reserved", "buried")}
    if any(left.values()):
        raise Failed(f"the queue should be empty after the job, it holds {left}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel-dir", type=Path, help="use the wheels there instead of building")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pulpo-wheels-") as temp:
        folder = Path(temp)
        try:
            wheels = build_wheels(folder / "wheels", args.wheel_dir)
            venv = folder / "venv"
            bin_folder = make_environment(venv, wheels)
            work = folder / "work"
            work.mkdir()
            check_environment(bin_folder, venv, work)
            with beanstalkd(folder / "binlog") as port:
                run_a_job(bin_folder, work, port)
        except (Failed, subprocess.TimeoutExpired) as error:
            print(f"wheels: FAILED: {error}", file=sys.stderr)
            return 1
    step(f"OK: {len(wheels)} wheels built; {' and '.join(INSTALLED)} from them ran a job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
