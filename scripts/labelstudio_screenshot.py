"""Re-take docs/img/label_studio_ranking.png: the ranking interface labelers see in Label Studio.

    .venv/bin/python scripts/labelstudio_screenshot.py [OUT.png]

Needs Debian's Chromium (``apt-get install -y chromium``); installs Label Studio into
``.labelstudio/venv`` when missing (`instructgpt.labeling.service`) and playwright (the Python
package, no browser download) into that same venv. Starts a throw-away Label Studio on a free
port of 127.0.0.1 with a temporary data directory, pushes one ranking task through
``instructgpt.labeling.studio`` as ``make labels-push`` would, logs in with headless Chromium,
opens the task and saves a small palette PNG.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instructgpt import credentials  # noqa: E402
from instructgpt.labeling import service  # noqa: E402
from instructgpt.labeling.formats import task_id  # noqa: E402
from instructgpt.labeling.studio import Studio, push  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
USER, PASSWORD, TOKEN = "labeler@example.com", "screenshot-pass-1", "screenshot-token-1"
PROMPT = "write a short story about a fox in elmwood ."
RESPONSES = [
    "the fox lived in elmwood . every morning it walked to the river and watched the boats . one day a boat "
    "stopped and a child waved . the fox waved back with its tail .",
    "the fox is a fox . the fox is a fox .",
    "once upon a time a fox in elmwood found a lost key . it carried the key to the baker , who had locked "
    "herself out , and she gave the fox bread .",
    "elmwood is a town . it has a river .",
]

BROWSER = r"""
import sys
from playwright.sync_api import sync_playwright
url, task_url, user, password, out, chromium = sys.argv[1:7]
flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, headless=True, args=flags)
    page = browser.new_page(viewport={"width": 1100, "height": 725})
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    try:
        page.wait_for_url(lambda u: "/user/login" not in u, timeout=60000)
        page.goto(task_url)
        page.wait_for_selector(".htx-ranker-item", timeout=60000)
    except Exception:
        page.screenshot(path=out + ".failed.png")
        print("browser stopped at", page.url, file=sys.stderr)
        raise
    page.wait_for_timeout(1500)
    page.screenshot(path=out)
    browser.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(out: Path) -> int:
    if not Path(CHROMIUM).exists():
        print("needs Debian's Chromium: apt-get install -y chromium", file=sys.stderr)
        return 1
    venv = ROOT / ".labelstudio" / "venv"
    service.ensure_venv(venv)
    py = venv / "bin" / "python"
    if subprocess.run([str(py), "-c", "import playwright"], capture_output=True).returncode:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "playwright"],
                       check=True)
    work = Path(tempfile.mkdtemp(prefix="ls-shot-"))
    port = free_port()
    # a throw-away instance: its account is given in its own credentials file instead of generated
    account = work / "labelstudio.env"
    credentials.write_env(account, {"LABEL_STUDIO_USERNAME": USER, "LABEL_STUDIO_PASSWORD": PASSWORD,
                                    "LABEL_STUDIO_API_KEY": TOKEN}, "the screenshot's throw-away Label Studio")
    proc = service.start(port, work / "data", venv=venv, log=work / "server.log", credentials_path=account)
    try:
        url = f"http://127.0.0.1:{port}"
        outbox = work / "outbox"
        outbox.mkdir()
        task = {"task_id": task_id("p0000042", RESPONSES), "prompt_id": "p0000042", "prompt": PROMPT,
                "responses": RESPONSES, "labelers_needed": 1, "answered_by": []}
        (outbox / "rank_tasks.jsonl").write_text(json.dumps(task) + "\n")
        studio = Studio(url, TOKEN)
        project = push(studio, outbox)["rank_tasks"]["project"]
        ls_task = studio.export(project, all_tasks=True)[0]["id"]
        raw = work / "shot.png"
        subprocess.run([str(py), "-c", BROWSER, url, f"{url}/projects/{project}/data?task={ls_task}", USER, PASSWORD,
                        str(raw), CHROMIUM], check=True)
        from PIL import Image

        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(raw).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        print(f"{out}: {out.stat().st_size // 1024} KiB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "label_studio_ranking.png"))
