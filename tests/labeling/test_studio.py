"""A real Label Studio round trip: export tasks, push, annotate through the API, pull, train.

Starts Label Studio 1.23.2 from ``.labelstudio/venv`` (created here when missing, about a
minute from the package index) on a free port of 127.0.0.1 with a temporary data directory and a
temporary secrets folder (``INSTRUCTGPT_SECRETS``), where its first start writes the account and
token it generated. Skipped, with the reason printed, only when that venv cannot be created.
Deselect with ``-m 'not labelstudio'``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from instructgpt import credentials
from instructgpt.labeling import service
from instructgpt.judging.human import read_judgements
from instructgpt.labeling.formats import write_jsonl
from instructgpt.labeling.run import label
from instructgpt.labeling.studio import Studio, choice_result, pull, push, ranking_result
from instructgpt.labeling.validation import PromptIndex
from instructgpt.labeling.config import LabelConfig
from tests.labeling.conftest import best_first, kept_prompts, quarantine, sampler

pytestmark = pytest.mark.labelstudio
REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".labelstudio" / "venv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv() -> Path:
    t0 = time.time()
    try:
        service.ensure_venv(VENV)
    except service.ServiceError as exc:
        print(f"\nSKIP: cannot create the Label Studio venv (no package registry?): {exc}")
        pytest.skip(f"cannot create the Label Studio venv: {str(exc)[-300:]}")
    print(f"\nLabel Studio: venv ready in {time.time() - t0:.1f} s")
    return VENV


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except Exception:  # noqa: BLE001 - a stuck server is killed rather than left behind
        proc.kill()


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    """The secrets folder of this module (as the Makefile's INSTRUCTGPT_SECRETS names the checkout's)."""
    folder = tmp_path_factory.mktemp("checkout") / ".secrets"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(credentials.DIR_ENV, str(folder))
        mp.delenv("LABEL_STUDIO_API_KEY", raising=False)
        mp.delenv("LABEL_STUDIO_USERNAME", raising=False)  # the default account name, admin@example.com
        yield folder


@pytest.fixture(scope="module")
def studio_server(secrets_dir, tmp_path_factory):
    """A Label Studio started as `make labelstudio` starts it: no credentials given, so its first
    start generates them. Yields its URL, its process and its log."""
    venv = _venv()
    port, data = free_port(), tmp_path_factory.mktemp("ls-data")
    log = data / "server.log"
    t1 = time.time()
    proc = service.start(port, data, venv=venv, log=log)
    print(f"Label Studio: server up in {time.time() - t1:.1f} s")
    yield f"http://127.0.0.1:{port}", proc, log
    _stop(proc)


@pytest.fixture(scope="module")
def studio_url(studio_server):
    return studio_server[0]


@pytest.fixture(scope="module")
def account(studio_server, secrets_dir):
    """What the first start wrote: LABEL_STUDIO_USERNAME, LABEL_STUDIO_PASSWORD, LABEL_STUDIO_API_KEY."""
    return credentials.read_env(secrets_dir / credentials.LABEL_STUDIO)


def _login(url: str, email: str, password: str) -> bool:
    """Label Studio's login form: a redirect on success, the form again on a wrong password."""
    with httpx.Client(base_url=url, timeout=30) as browser:
        browser.get("/user/login/")
        resp = browser.post("/user/login/", headers={"Referer": f"{url}/user/login/"},
                            data={"email": email, "password": password,
                                  "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    return resp.status_code == 302


def _whoami(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return httpx.get(f"{url}/api/current-user/whoami", headers=headers, timeout=30).status_code


def test_server_listens_on_loopback_only_and_both_token_kinds_work(studio_url, account):
    port = int(studio_url.rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listening if line.split()[3] == "0A"]  # state LISTEN
    assert f"0100007F:{port:04X}" in local and f"00000000:{port:04X}" not in local
    legacy = Studio(studio_url, account["LABEL_STUDIO_API_KEY"])
    assert legacy.whoami()["email"] == account["LABEL_STUDIO_USERNAME"]
    pat = legacy.request("POST", "/api/token/")["token"]  # a personal access token (JWT refresh token)
    assert Studio(studio_url, pat).whoami()["email"] == account["LABEL_STUDIO_USERNAME"]


def test_first_start_generates_the_account_and_refuses_requests_without_it(studio_server, account, secrets_dir):
    url, proc, log = studio_server
    # generated at the first start into the secrets folder, readable by its owner only
    path = secrets_dir / credentials.LABEL_STUDIO
    assert path.stat().st_mode & 0o777 == 0o600 and secrets_dir.stat().st_mode & 0o777 == 0o700
    email, password, key = (account[k] for k in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_API_KEY"))
    assert email == service.DEFAULT_USERNAME
    assert key != service.PUBLISHED_API_KEY and len(key) == 40 and len(password) >= 20
    # refused: no token, the token every copy of the project once started with, a wrong password
    assert _whoami(url, None) == 401
    assert httpx.get(f"{url}/api/projects/", timeout=30).status_code == 401
    assert _whoami(url, service.PUBLISHED_API_KEY) == 401
    assert not _login(url, email, "instructgpt")
    # accepted: the generated token and password
    assert _whoami(url, key) == 200
    assert _login(url, email, password)
    # neither is in the server's log, nor on its command line (which any local user can list)
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
    for secret in (key, password):
        assert secret not in log.read_text() and secret not in cmdline


def test_labels_push_reads_the_generated_token(studio_url, secrets_dir, tmp_path):
    """`make labels-push` (python -m instructgpt.labeling push) with no LABEL_STUDIO_API_KEY: the
    token comes from the secrets folder; without the file it says where `make labelstudio` writes it."""
    outbox = tmp_path / "labels/outbox"
    write_jsonl(outbox / "judge_tasks.jsonl", [{"task_id": "j0", "prompt_id": "p0000", "prompt": "question",
                                                "a": "answer a", "b": "answer b"}])
    env = {k: v for k, v in os.environ.items() if k != "LABEL_STUDIO_API_KEY"}
    env.update(LABEL_STUDIO_URL=studio_url, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "instructgpt.labeling", "push", "--outbox", str(outbox)]
    proc = subprocess.run(cmd, cwd=tmp_path, env={**env, credentials.DIR_ENV: str(secrets_dir)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 imported" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(cmd, cwd=tmp_path, env={**env, credentials.DIR_ENV: str(tmp_path / "elsewhere")},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "no API key" in proc.stderr and "make labelstudio" in proc.stderr, proc.stderr


def test_an_account_made_with_the_published_token_gets_new_credentials(tmp_path):
    """A data folder from before credentials were generated: every copy of the project started
    Label Studio with the token instructgpt-local-token and the password instructgpt. With no
    credentials file, its next start generates new ones and sets them on that account."""
    venv = _venv()
    port, data, path = free_port(), tmp_path / "data", tmp_path / ".secrets" / credentials.LABEL_STUDIO
    url, email = f"http://127.0.0.1:{port}", service.DEFAULT_USERNAME
    credentials.write_env(path, {"LABEL_STUDIO_USERNAME": email, "LABEL_STUDIO_PASSWORD": "instructgpt",
                                 "LABEL_STUDIO_API_KEY": service.PUBLISHED_API_KEY}, "what earlier versions started with")
    proc = service.start(port, data, venv=venv, log=tmp_path / "before.log", credentials_path=path)
    try:
        assert _whoami(url, service.PUBLISHED_API_KEY) == 200 and _login(url, email, "instructgpt")  # the old state
    finally:
        _stop(proc)
    path.unlink()
    proc = service.start(port, data, venv=venv, log=tmp_path / "after.log", credentials_path=path)
    try:
        new = credentials.read_env(path)
        assert new["LABEL_STUDIO_API_KEY"] != service.PUBLISHED_API_KEY
        assert _whoami(url, service.PUBLISHED_API_KEY) == 401 and not _login(url, email, "instructgpt")
        assert _whoami(url, new["LABEL_STUDIO_API_KEY"]) == 200 and _login(url, email, new["LABEL_STUDIO_PASSWORD"])
    finally:
        _stop(proc)
    # a later start keeps them
    proc = service.start(port, data, venv=venv, log=tmp_path / "again.log", credentials_path=path)
    try:
        assert credentials.read_env(path) == new and _whoami(url, new["LABEL_STUDIO_API_KEY"]) == 200
    finally:
        _stop(proc)


def test_ranking_round_trip_trains_a_reward_model(studio_url, account, tmp_path, tokenizer, model_dir):
    from instructgpt.reward_model import RewardModel
    from instructgpt.train.reward import Comparison, RewardConfig, evaluate_rm, train_reward_model

    studio = Studio(studio_url, account["LABEL_STUDIO_API_KEY"])
    prompts = kept_prompts(n=40)
    index = PromptIndex.from_frames(prompts, quarantine())
    rm_prompts = prompts[(prompts["dataset"] == "rm") & prompts["split"].isin(["train", "valid"])]
    answers, outbox = tmp_path / "labels/rankings", tmp_path / "labels/outbox"
    answers.mkdir(parents=True)
    cfg = LabelConfig(labelers="human", k_min=2, k_max=5, overlap=0.25, max_prompts=None)

    # 1. the label stage's step exports ranking tasks (K = 2..5; the overlap share wants two labelers)
    first = label(cfg, rm_prompts, index, answers, sampler=sampler)
    write_jsonl(outbox / "rank_tasks.jsonl", first.tasks)
    assert {len(t["responses"]) for t in first.tasks} == {2, 3, 4, 5}
    overlap = {t["task_id"] for t in first.tasks if t["labelers_needed"] == 2}
    assert 0 < len(overlap) < len(first.tasks)

    # 2. push: one project, every task imported once, the overlap tasks set to two annotators
    report = push(studio, outbox)["rank_tasks"]
    assert report["imported"] == len(first.tasks) and report["overlap"] == len(overlap)
    assert push(studio, outbox)["rank_tasks"]["imported"] == 0  # pushing again adds nothing
    assert json.loads((outbox / "studio.json").read_text())["projects"]["rank_tasks"] == report["project"]

    # 3. two labelers annotate through the API: alice every task, bob the overlap ones (he swaps the
    #    two best); Label Studio keeps an overlap task open until both did
    alice = studio.create_user("alice@example.com", "alice")
    bob = studio.create_user("bob@example.com", "bob")
    tasks = studio.export(report["project"], all_tasks=True)
    for t in tasks:
        order = best_first(t["data"]["prompt"], t["data"]["responses"])
        studio.annotate(t["id"], ranking_result(order), completed_by=alice)
        if t["data"]["task_id"] in overlap:
            assert studio.request("GET", f"/api/tasks/{t['id']}/")["is_labeled"] is False
            studio.annotate(t["id"], ranking_result([order[1], order[0], *order[2:]]), completed_by=bob)
        assert studio.request("GET", f"/api/tasks/{t['id']}/")["is_labeled"] is True

    # 4. pull writes the export where the pipeline reads rankings; the label step now has them all
    pulled = pull(studio, outbox, tmp_path)["rank_tasks"]
    assert pulled["annotations"] == len(first.tasks) + len(overlap)
    assert (answers / "label_studio.json").exists()
    second = label(cfg, rm_prompts, index, answers, sampler=sampler)
    assert second.tasks == [] and second.rejected == []
    for c in second.comparisons:  # what the labelers submitted, best first, not reversed or shuffled
        order = best_first(c["prompt"], c["responses"])
        assert c["ranking"] == (order if c["labeler_id"] == f"label-studio:{alice}" else [order[1], order[0], *order[2:]])
    assert len(second.comparisons) == len(first.tasks) + len(overlap)
    assert second.metrics["agreement/labeler/label-studio:%d" % alice] == second.metrics["agreement/overall"] < 1
    assert f"agreement/labeler/label-studio:{bob}" in second.metrics

    # 5. a tiny reward model trained on them (real optimizer steps) ranks these pairs above chance
    comparisons = [Comparison(c["prompt"], c["responses"], c["ranking"]) for c in second.comparisons
                   if c["labeler_id"] == f"label-studio:{alice}"]
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    rm_cfg = RewardConfig(epochs=4, lr=3e-3, batch_size=8, max_len=48, warmup=1, show_progress=False)
    before = evaluate_rm(rm, tokenizer, comparisons, 16, 48)["accuracy"]
    metrics = train_reward_model(rm, tokenizer, comparisons, comparisons, [("repeat the word cat 1 times", "cat")],
                                 rm_cfg)
    assert metrics["valid/accuracy"] > 0.75 and metrics["valid/accuracy"] > before + 0.15, (before, metrics)


def test_judge_round_trip(studio_url, account, tmp_path):
    studio = Studio(studio_url, account["LABEL_STUDIO_API_KEY"])
    outbox = tmp_path / "labels/outbox"
    judge_tasks = [{"task_id": f"j{i}", "prompt_id": f"p{i:04d}", "prompt": f"question {i}", "a": f"answer a{i}",
                    "b": f"answer b{i}"} for i in range(4)]
    write_jsonl(outbox / "judge_tasks.jsonl", judge_tasks)
    report = push(studio, outbox)
    assert report["judge_tasks"]["imported"] == 4 and "rank_tasks" not in report
    judge = studio.create_user("judge@example.com", "judge")
    picked = {"j0": "a", "j1": "b", "j2": "tie"}
    for t in studio.export(report["judge_tasks"]["project"], all_tasks=True):
        if t["data"]["task_id"] in picked:
            studio.annotate(t["id"], choice_result(picked[t["data"]["task_id"]]), completed_by=judge)
    pull(studio, outbox, tmp_path)
    # read as the evaluate stage reads inputs.judgements (the human judge), not by a reader no stage calls
    judgements, ignored = read_judgements(tmp_path / "labels/judgements")
    assert ignored == [] and [j.problem for j in judgements] == [None] * 3
    assert sorted((j.task_id, j.choice, j.judge_id) for j in judgements) == [
        ("j0", "a", f"label-studio:{judge}"), ("j1", "b", f"label-studio:{judge}"),
        ("j2", "tie", f"label-studio:{judge}")]
