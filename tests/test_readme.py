"""The README cannot drift: its Python examples run, and it opens with the two commands."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
SETUP_AND_DEMO = "bash .ci/bootstrap -s demo"
SETUP_AND_TEST = "bash .ci/bootstrap -s lint typecheck tests wheels"


def code_blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang == language]


class TestReadmeExamples:
    def test_every_python_block_runs_in_order_in_one_namespace(self) -> None:
        blocks = code_blocks("python")
        assert blocks, "README.md has no ```python example"
        namespace: dict[str, object] = {"__name__": "readme"}
        for number, block in enumerate(blocks, 1):
            code = compile(block, f"README.md python block {number}", "exec", dont_inherit=True)
            exec(code, namespace)


class TestReadmeOpening:
    def test_starts_with_the_set_up_and_run_commands(self) -> None:
        text = README.read_text(encoding="utf-8")
        first = FENCE.search(text)
        assert first is not None, "README.md has no code block"
        before = text[: first.start()].strip().splitlines()
        assert all(line.startswith("#") for line in before), (
            f"README.md must open with the two commands, not {before!r}"
        )
        commands = [line.strip() for line in first.group(2).splitlines() if line.strip()]
        assert commands == [SETUP_AND_DEMO, SETUP_AND_TEST]

    def test_ci_runs_the_readme_test_command(self) -> None:
        run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
        lines = [line.strip() for line in run.splitlines()]
        assert SETUP_AND_TEST in lines, ".ci/run must run the README's test command as written"
