"""Every ``bash`` block of the README's first screen and of its three API sections runs as written, in order,
in one shell with ``KEY`` exported, against the session's stack (issue 15, item 1). Blocks preceded by
``<!-- readme-test: skip -->`` and the lines ``make run`` / ``make test`` are left out. Every curl answer is
checked: an HTTP error or a JSON answer with a top-level ``"error"`` (not null) fails the script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from infra.settings import Settings
from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]
SKIP = "<!-- readme-test: skip -->"
API_SECTIONS = ("## Fraud and anomaly models: `/v1/ml`", "## Lotto 6/45", "## RL edge placement: `/api/v1`")
BLOCK = re.compile(r"(?P<skip><!-- readme-test: skip -->\n)?```bash\n(?P<body>.*?)```", re.S)

# curl answers are checked: an HTTP error (>= 400) or a JSON object with a non-null top-level "error" stops it
PREAMBLE = r"""set -euo pipefail
curl() {
  local out
  if ! out=$(command curl --fail-with-body -sS "$@"); then
    printf '%s\n' "$out"; echo "README TEST: curl failed: curl $*" >&2; kill -TERM $$; return 1
  fi
  printf '%s\n' "$out"
  if ! printf '%s' "$out" | python3 -c 'import json,sys
try: d = json.load(sys.stdin)
except ValueError: sys.exit(0)
sys.exit(isinstance(d, dict) and d.get("error") is not None)'; then
    echo "README TEST: error answer: curl $*" >&2; kill -TERM $$; return 1
  fi
}
"""


def readme_parts(text: str) -> list[str]:
    """The first screen (up to ``## Contents``) and each API section (up to the next ``## `` heading)."""
    parts = [text.split("\n## Contents", 1)[0]]
    for heading in API_SECTIONS:
        start = text.index("\n" + heading + "\n")
        end = text.find("\n## ", start + 1)
        parts.append(text[start : end if end != -1 else len(text)])
    return parts


def readme_script(text: str, base_url: str) -> str:
    lines: list[str] = []
    for part in readme_parts(text):
        for block in BLOCK.finditer(part):
            if block.group("skip"):
                continue
            for line in block.group("body").splitlines():
                command = line.split("#", 1)[0].strip()
                if command in ("make run", "make test") or command.startswith("export KEY="):
                    continue
                lines.append(line)
    script = "\n".join(lines)
    host = base_url.removeprefix("http://").rstrip("/")
    return PREAMBLE + script.replace("http://localhost:8000", base_url).replace("localhost:8000", host) + "\n"


def test_readme_parts_have_blocks() -> None:
    text = (ROOT / "README.md").read_text()
    parts = readme_parts(text)
    assert len(parts) == 4
    assert all("```bash" in part for part in parts)
    assert SKIP in parts[0]  # make run / make test
    assert "job_..." not in readme_script(text, "http://127.0.0.1:1")


def end_active_canary_and_shadow(api: httpx.Client) -> None:
    """Other modules of the session may leave a canary or a shadow running; the README starts its own."""
    state = api.get("/v1/ml/deploy/current").json()
    if state.get("canary"):
        canary_id = state["canary"]["canary_id"]
        assert api.post(f"/v1/ml/deploy/canary/{canary_id}/rollback").status_code == 200
    if state.get("shadow"):
        shadow_id = state["shadow"]["shadow_id"]
        assert api.post(f"/v1/ml/deploy/shadow/{shadow_id}/stop").status_code == 200


def test_readme_commands_run_in_order(base_url: str, api: httpx.Client, settings: Settings, tmp_path: Path) -> None:
    end_active_canary_and_shadow(api)
    script = readme_script((ROOT / "README.md").read_text(), base_url)
    (tmp_path / "readme.sh").write_text(script)
    env = {
        **os.environ,
        "KEY": TEST_KEY,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MODELBUS_DATA_DIR": str(settings.data_dir),  # stack.json: the CLI finds the API as under `make run`
    }
    for name in ("MODELBUS_API_KEY", "MODELBUS_PUBLIC_URL"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", str(tmp_path / "readme.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"README commands failed (exit {result.returncode})\n--- script\n{script}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr[-20000:]}"
    )
