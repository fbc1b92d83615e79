"""A small HTTP client for Label Studio (1.23), the labelers' interface for exported tasks.

Label Studio runs as a separate local service in its own venv (`instructgpt.labeling.service`,
``make labelstudio``); this module talks to its REST API with httpx, so the project does not
depend on label-studio or its SDK.

- ``push``: every tasks file in ``labels/outbox/`` goes into a Label Studio project of its kind
  (created on first push, its id remembered in ``labels/outbox/studio.json``):
  ``rank_tasks.jsonl`` into a ranking project (List + Ranker: drag the responses, best at the
  top), ``judge_tasks.jsonl`` into a pairwise project (A better / B better / tie). Tasks already
  in the project (same ``task_id``) are not imported again. A ranking task that needs two
  labelers (``labelers_needed: 2``, the overlap share) gets Label Studio's per-task ``overlap``
  of 2: Label Studio keeps it in the labeling queue until two *different* annotators submitted
  it (the queue never serves a task twice to the same person).
- ``pull``: each project's JSON export (annotated tasks) is written to
  ``labels/rankings/label_studio.json`` and ``labels/judgements/label_studio.json``, where the
  pipeline (and DVC, which tracks those directories) sees the new answers.

Authentication: ``LABEL_STUDIO_API_KEY`` when set, else, for a Label Studio on this machine
(127.0.0.1 or localhost), the token ``make labelstudio`` generated at its first start
(``.secrets/labelstudio.env``, ``instructgpt.labeling.service``). Either a legacy token
(``Authorization: Token ...``; ``make labelstudio`` enables them, which 1.23 turns off by default),
or a personal access token from Account & Settings (a JWT refresh token: exchanged at
``/api/token/refresh/`` for a short-lived access token sent as ``Bearer``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from instructgpt import credentials
from instructgpt.labeling.formats import RANKER, RESPONSES_LIST, item_id, read_jsonl

DEFAULT_URL = "http://127.0.0.1:8080"
STATE = "studio.json"
CHOICE = "choice"  # name of the Choices control in the pairwise judge project

RANKING_CONFIG = f"""<View>
  <Header value="Rank the responses to this prompt: drag the best to the top, the worst to the bottom."/>
  <View style="padding: 0.5em 1em; background: var(--color-neutral-background); border-radius: 4px; white-space: pre-wrap;">
    <Text name="prompt" value="$prompt"/>
  </View>
  <Style>.htx-ranker-item p:last-child {{ display: none; }}</Style>
  <List name="{RESPONSES_LIST}" value="$items" title="Responses (best first)"/>
  <Ranker name="{RANKER}" toName="{RESPONSES_LIST}"/>
</View>"""

JUDGE_CONFIG = f"""<View>
  <Header value="Which response to this prompt is better?"/>
  <View style="padding: 0.5em 1em; background: var(--color-neutral-background); border-radius: 4px; white-space: pre-wrap;">
    <Text name="prompt" value="$prompt"/>
  </View>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1;"><Header value="Response A" size="5"/><Text name="a" value="$a"/></View>
    <View style="flex: 1;"><Header value="Response B" size="5"/><Text name="b" value="$b"/></View>
  </View>
  <Choices name="{CHOICE}" toName="prompt" choice="single" required="true" showInline="true">
    <Choice value="A is better" alias="a"/>
    <Choice value="B is better" alias="b"/>
    <Choice value="Tie" alias="tie"/>
  </Choices>
</View>"""


def ranking_task_data(task: dict[str, Any]) -> dict[str, Any]:
    """A ranking task as Label Studio task data: our fields plus the List's ``items``."""
    items = [{"id": item_id(i), "title": f"Response {i + 1}", "body": text or "(empty response)"}
             for i, text in enumerate(task["responses"])]
    return {k: task[k] for k in ("task_id", "prompt_id", "prompt", "responses")} | {"items": items}


def judge_task_data(task: dict[str, Any]) -> dict[str, Any]:
    """A judge task as Label Studio task data (the exported fields as they are)."""
    return {k: task[k] for k in ("task_id", "prompt_id", "prompt", "a", "b")}


# kind (tasks file stem) -> project title, labeling config, task data, where pull writes its export
KINDS: dict[str, tuple[str, str, Callable[[dict], dict], str]] = {
    "rank_tasks": ("InstructGPT: rank responses", RANKING_CONFIG, ranking_task_data, "labels/rankings"),
    "judge_tasks": ("InstructGPT: compare two responses", JUDGE_CONFIG, judge_task_data, "labels/judgements"),
}


class StudioError(RuntimeError):
    """Label Studio answered with an error (the message names the request and what to do)."""


def local_api_key(url: str) -> str | None:
    """The token of the Label Studio ``make labelstudio`` runs here, for a URL on this machine only
    (the local token is never sent to another server)."""
    path = credentials.secrets_dir() / credentials.LABEL_STUDIO
    if httpx.URL(url).host not in ("127.0.0.1", "localhost") or not path.exists():
        return None
    return credentials.read_env(path).get("LABEL_STUDIO_API_KEY")


def is_personal_access_token(key: str) -> bool:
    """Personal access tokens are JWTs (three base64 parts); legacy tokens are plain hex."""
    return key.count(".") == 2 and key.startswith("eyJ")


class Studio:
    """Label Studio's REST API at ``url`` with ``api_key`` (legacy token or personal access token)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = (url or os.environ.get("LABEL_STUDIO_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or os.environ.get("LABEL_STUDIO_API_KEY") or local_api_key(self.url)
        if not key:
            raise StudioError(f"no API key for {self.url}: `make labelstudio` writes its token to "
                              f"{credentials.secrets_dir() / credentials.LABEL_STUDIO} at its first start; for "
                              f"another Label Studio set LABEL_STUDIO_API_KEY (Account & Settings > Personal "
                              f"Access Token)")
        self._key = key
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        self._authorize()

    def _authorize(self) -> None:
        if not is_personal_access_token(self._key):
            self.http.headers["Authorization"] = f"Token {self._key}"
            return
        try:
            resp = self.http.post("/api/token/refresh/", json={"refresh": self._key})
        except httpx.HTTPError as exc:
            raise StudioError(f"cannot reach Label Studio at {self.url} ({exc}): is it running (`make labelstudio`)?") from exc
        if resp.status_code != 200:
            raise StudioError(f"Label Studio refused the personal access token ({resp.status_code}): "
                              f"{resp.text[:300]}")
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; JSON out. A 401 with a personal access token refreshes it once."""
        for attempt in (0, 1):
            try:
                resp = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise StudioError(f"cannot reach Label Studio at {self.url} ({exc}): is it running "
                                  f"(`make labelstudio`) and is LABEL_STUDIO_URL right?") from exc
            if resp.status_code == 401 and attempt == 0 and is_personal_access_token(self._key):
                self._authorize()  # access tokens are short-lived
                continue
            break
        if resp.status_code == 401:
            raise StudioError(f"{method} {path}: 401 {resp.text[:300]} - check LABEL_STUDIO_API_KEY or "
                              f"{credentials.secrets_dir() / credentials.LABEL_STUDIO} (legacy tokens work only where "
                              f"the organisation enables them; a personal access token always does)")
        if resp.status_code >= 400:
            raise StudioError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    # -- resources ---------------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return self.request("GET", "/api/current-user/whoami")

    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        return self.request("POST", "/api/projects/", json={"title": title, "label_config": label_config,
                                                             "description": description})["id"]

    def project_exists(self, project: int) -> bool:
        try:
            self.request("GET", f"/api/projects/{project}/")
        except StudioError as exc:
            if " 404 " in str(exc):
                return False
            raise
        return True

    def import_tasks(self, project: int, data: list[dict[str, Any]], chunk: int = 500) -> int:
        """Import task data (one dict per task); returns how many tasks Label Studio created."""
        created = 0
        for start in range(0, len(data), chunk):
            out = self.request("POST", f"/api/projects/{project}/import", json=data[start:start + chunk])
            created += int(out.get("task_count", 0))
        return created

    def export(self, project: int, all_tasks: bool = False) -> list[dict[str, Any]]:
        """The project's JSON export: annotated tasks (all tasks with ``all_tasks``)."""
        params = {"exportType": "JSON", "download_all_tasks": "true" if all_tasks else "false"}
        return self.request("GET", f"/api/projects/{project}/export", params=params)

    def set_overlap(self, task: int, annotators: int) -> None:
        """How many different annotators Label Studio asks for this task (its ``overlap``)."""
        self.request("PATCH", f"/api/tasks/{task}/", json={"overlap": annotators})

    def create_user(self, email: str, username: str = "") -> int:
        """A member of the organisation (an annotator); returns the user id."""
        return self.request("POST", "/api/users/", json={"email": email, "username": username or email.split("@")[0],
                                                          "first_name": username or email.split("@")[0]})["id"]

    def annotate(self, task: int, result: list[dict[str, Any]], completed_by: int | None = None) -> int:
        """Submit an annotation of a task (as ``completed_by``, default the token's user)."""
        body: dict[str, Any] = {"result": result}
        if completed_by is not None:
            body["completed_by"] = completed_by
        return self.request("POST", f"/api/tasks/{task}/annotations/", json=body)["id"]


def ranking_result(order: list[int]) -> list[dict[str, Any]]:
    """A Ranker annotation result: response indices best first (what the interface submits)."""
    return [{"from_name": RANKER, "to_name": RESPONSES_LIST, "type": "ranker",
             "value": {"ranker": {RANKER: [item_id(i) for i in order]}}}]


def choice_result(choice: str) -> list[dict[str, Any]]:
    """A pairwise judge annotation result: ``a``, ``b`` or ``tie``."""
    return [{"from_name": CHOICE, "to_name": "prompt", "type": "choices", "value": {"choices": [choice]}}]


# -- push / pull ------------------------------------------------------------------------------
def load_state(outbox: Path, url: str) -> dict[str, Any]:
    """Project ids remembered for this Label Studio (another URL starts afresh)."""
    path = outbox / STATE
    state = json.loads(path.read_text()) if path.exists() else {}
    if state.get("url") != url:
        state = {"url": url, "projects": {}}
    return state


def save_state(outbox: Path, state: dict[str, Any]) -> None:
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / STATE).write_text(json.dumps(state, indent=2) + "\n")


def push(studio: Studio, outbox: str | Path = "labels/outbox") -> dict[str, dict[str, int]]:
    """Import the tasks files of ``outbox`` into their projects; returns per kind: project, tasks
    in the file, newly imported, set to two annotators."""
    outbox = Path(outbox)
    state = load_state(outbox, studio.url)
    report = {}
    for kind, (title, config, to_data, _) in KINDS.items():
        tasks = read_jsonl(outbox / f"{kind}.jsonl")
        if not (outbox / f"{kind}.jsonl").exists():
            continue
        project = state["projects"].get(kind)
        if project is None or not studio.project_exists(project):
            project = studio.create_project(title, config, f"Tasks from {outbox / (kind + '.jsonl')}")
            state["projects"][kind] = project
            save_state(outbox, state)
        present = {t["data"].get("task_id") for t in studio.export(project, all_tasks=True)}
        new = [t for t in tasks if t["task_id"] not in present]
        imported = studio.import_tasks(project, [to_data(t) for t in new]) if new else 0
        overlap = 0
        wanted = {t["task_id"]: int(t.get("labelers_needed", 1)) for t in new if int(t.get("labelers_needed", 1)) > 1}
        if wanted:
            for t in studio.export(project, all_tasks=True):
                if t["data"].get("task_id") in wanted:
                    studio.set_overlap(t["id"], wanted[t["data"]["task_id"]])
                    overlap += 1
        report[kind] = {"project": project, "tasks": len(tasks), "imported": imported, "overlap": overlap}
    return report


def pull(studio: Studio, outbox: str | Path = "labels/outbox", root: str | Path = ".") -> dict[str, dict[str, Any]]:
    """Write each project's export (annotated tasks) where the pipeline reads answers."""
    state = load_state(Path(outbox), studio.url)
    report = {}
    for kind, project in state["projects"].items():
        export = sorted(studio.export(project), key=lambda t: t["id"])
        target = Path(root) / KINDS[kind][3] / "label_studio.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(export, indent=1, ensure_ascii=False) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
        report[kind] = {"project": project, "tasks": len(export),
                        "annotations": sum(len(t.get("annotations") or []) for t in export), "file": str(target)}
    return report
