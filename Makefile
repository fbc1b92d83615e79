# The verbs a user needs. `make run` and `make test` create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PROFILE ?= demo
# extra pip arguments for torch, e.g. PyTorch's CPU wheel index on a stock Linux machine
TORCH_PIP_ARGS ?=
# demo runs here; any other profile in its own workspace profiles/<name>/ (flows/profiles.py)
WS := $(if $(filter-out demo,$(PROFILE)),profiles/$(PROFILE)/,)
export PATH := $(CURDIR)/$(BIN):$(PATH)
# offline and quiet: the same set as instructgpt/offline.py (tests/pipeline/test_offline.py holds them equal)
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/.prefect
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK := true
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export GX_ANALYTICS_ENABLED := false
export GIT_PYTHON_REFRESH := quiet
# a fresh clone's ephemeral Prefect server migrates its new database first: more than the default 20 s on 2 cores
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
# The Prefect deployment's name (prefect.yaml): one deployment per workspace on a shared server,
# e.g. make deploy DEPLOYMENT=nightly-alice (docs/SCALE.md, section 6)
DEPLOYMENT ?= nightly
# The services' generated secrets (instructgpt/credentials.py): this checkout's .secrets/ (mode 0700,
# git-ignored), absolute so that a profile's workspace finds them too; make secrets writes the shared
# servers' ones (docs/SCALE.md, section 7), make labelstudio its own at its first start.
INSTRUCTGPT_SECRETS ?= $(CURDIR)/.secrets
export INSTRUCTGPT_SECRETS
# Label Studio (make labelstudio): a local service in its own venv .labelstudio/venv, on 127.0.0.1 only.
# Its first start generates the password and API token into $(INSTRUCTGPT_SECRETS)/labelstudio.env.
LABEL_STUDIO_PORT ?= 8080
LABEL_STUDIO_URL ?= http://127.0.0.1:$(LABEL_STUDIO_PORT)
export LABEL_STUDIO_PORT LABEL_STUDIO_URL

.PHONY: run seeds test test-unit ui data venv venv-test constraints deploy worker bench bench-peers gpu-check world demo-base clean help results-tags test-acceptance test-services labelstudio labelstudio-venv labels-push labels-pull secrets

help:
	@echo "make run     - the whole pipeline (Prefect flow over DVC stages) on the demo data, offline"
	@echo "               PROFILE=tiny: the tiny profile, in its own workspace profiles/tiny/"
	@echo "make seeds   - the demo on three training seeds and the mean ± sd of its headline figures (~30 min on 2 cores)"
	@echo "make test    - the test suite (without the long acceptance runs)"
	@echo "make test-unit - the fast tier alone (about a minute): no end-to-end or slow tests (-m unit)"
	@echo "make test-acceptance - own data/logs/model/labelers end to end, a real Label Studio round trip, dvc repro vs the flow"
	@echo "make test-services - MLflow on PostgreSQL, DVC on S3 (moto), Prefect server + workers, the deployment (10-15 min)"
	@echo "make ui      - MLflow UI on http://127.0.0.1:5000 over mlflow/"
	@echo "make secrets - generate the shared servers' passwords into .secrets/ (MLFLOW_AUTH_DB=URL; docs/SCALE.md, section 7)"
	@echo "make deploy  - register the nightly Prefect deployment (needs 'prefect server start'; DEPLOYMENT=name)"
	@echo "make worker  - start a worker on the local process pool"
	@echo "make bench   - the benchmarks under bench/"
	@echo "make bench-peers - PPO and the RM against TRL on the same shapes (installs the peers in .peers/)"
	@echo "make gpu-check - bf16 smoke checks (training learns as in fp32) and throughput on this machine's GPU (CPU: tiny)"
	@echo "make labelstudio - Label Studio on http://127.0.0.1:8080 (own venv .labelstudio/venv) for human labelers"
	@echo "make labels-push - tasks waiting in labels/outbox/ into Label Studio projects"
	@echo "make labels-pull - Label Studio's answers into labels/rankings/ and labels/judgements/"
	@echo "make results-tags - tag the commits that measured and wrote down earlier figures (docs/RESULTS.md)"

# constraints.txt pins every package to the versions last tested together (make constraints
# refreshes it): pip then has nothing to resolve, and two installs a month apart are the same.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: a looser request pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -c constraints.txt -e .
	touch $@

# the tests' extra packages (pytest, moto's S3 server, PostgreSQL's driver, DVC's S3 remote)
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

# maintainers: after changing pyproject.toml's ranges, re-resolve into a new venv and pin the result
constraints:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS) && .venv-lock/bin/pip install --quiet -e '.[test]'
	(echo "# every package at the version tested together; make constraints writes this file"; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -v '^torch==') > constraints.txt
	rm -rf .venv-lock

# The raw demo data and the demo's pretrained base model come from the DVC remote committed in
# dvc-store/ (no network needed).
data/prompts.jsonl: data.dvc | venv
	$(BIN)/dvc pull --quiet data.dvc

models/demo-base/config.json: models/demo-base.dvc | venv
	$(BIN)/dvc pull --quiet models/demo-base.dvc

data: data/prompts.jsonl models/demo-base/config.json

run: venv data
	$(PY) -m flows.pipeline --profile $(PROFILE)
	@echo
	@echo "Results ($(PROFILE) profile):"
	@echo "  evaluation report : $(WS)outputs/evaluate/report.md"
	@echo "  DVC metrics       : $(if $(WS),cd $(WS) && ,)dvc metrics show   (compare runs in the MLflow UI)"
	@echo "  MLflow runs       : make ui$(if $(WS), PROFILE=$(PROFILE),), then the URL it prints"
	@echo "  Prefect artifacts : prefect server start (PREFECT_HOME=.prefect), then http://127.0.0.1:4200"

# the demo on three training seeds (params.yaml, profiles/seed1.yaml, profiles/seed2.yaml: the same
# data and base), then a table of the headline figures per seed with mean ± sd (outputs/seeds/seeds.md)
seeds: venv data
	$(PY) -m flows.seeds

# Test processes (pytest-xdist; one per core of the 2-core CI machine). Each test module stays in
# one process, so a module's tests keep their order and their shared workspace; the end-to-end
# modules are queued first (tests/conftest.py).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# make test: everything but the long acceptance runs and the services (under 15 min on 2 cores
# with the venv); .ci/run runs all three. The demo data too: the demo tokenizer's ids on it are pinned.
test: venv-test data
	$(PY) -m pytest -q $(XDIST) -m "not acceptance and not labelstudio and not services"

# the fast tier: every test not marked e2e, slow, acceptance, services or labelstudio (tests/conftest.py)
test-unit: venv-test data
	$(PY) -m pytest -q $(XDIST) -m unit

# the shared services, each a real server started by the tests (docs/SCALE.md, sections 4-6):
# PostgreSQL + MLflow server, moto's S3 server, Prefect server + two workers; trains the tiny profile
# once; and the scheduled deployment on its own Prefect server with a worker (tests/e2e/test_deployment.py)
test-services: venv-test
	$(PY) -m pytest -q -m services

# a team's own data end to end (~5 min) and its own log formats (Parquet, partitions: ~2 min), the real
# Label Studio round trip (~1 min + its venv), plain dvc repro against the Prefect flow (~8 min)
test-acceptance: venv-test
	$(PY) -m pytest -q $(XDIST) -m "acceptance or labelstudio"

ui: venv
	@cd ./$(WS) && $(CURDIR)/$(PY) -m flows.ui

# the pool is created when missing and left as it is otherwise (on a shared server, other
# workspaces' deployments use it too)
deploy: venv
	$(BIN)/prefect work-pool inspect local >/dev/null 2>&1 || $(BIN)/prefect work-pool create local --type process
	INSTRUCTGPT_DEPLOYMENT=$(DEPLOYMENT) $(BIN)/prefect --no-prompt deploy --all

worker: venv
	$(BIN)/prefect worker start --pool local

# The shared MLflow and Prefect servers' secrets (docs/SCALE.md, section 7), kept when they exist:
# services.env for the servers' host, pipeline.env for every machine that runs stages or workers.
# MLFLOW_AUTH_DB: MLflow's user database (SQLAlchemy URL), else a SQLite file in .secrets/.
secrets: venv
	$(PY) -m instructgpt.credentials services $(if $(MLFLOW_AUTH_DB),--mlflow-auth-db '$(MLFLOW_AUTH_DB)',)

bench: venv
	for b in $(filter-out bench/ppo_vs_trl.py,$(wildcard bench/*.py)); do $(PY) $$b || exit 1; done

# bf16 correctness and throughput on a GPU (bench/gpu.py; tiny shapes on a CPU); exit 1 when a smoke
# check fails. A GPU machine without the venv: python bench/gpu.py, with torch, transformers and peft.
gpu-check: venv
	$(PY) bench/gpu.py

# side by side with the peers, each in its own venv under .peers/ (created on first use):
# PPO against TRL 0.29.1's PPOTrainer, the RM against TRL 1.16.0's RewardTrainer
bench-peers: venv
	PEER_PYTHON=$(PYTHON) $(PY) bench/ppo_vs_trl.py
	$(PY) bench/reward_model.py --vs-trl

# Human labelers: Label Studio 1.23.2 in .labelstudio/venv (created on first use, never the project's venv).
labelstudio-venv: venv
	LABEL_STUDIO_PYTHON=$(PYTHON) $(PY) -c "from instructgpt.labeling.service import ensure_venv; ensure_venv()"

labelstudio: venv
	LABEL_STUDIO_PYTHON=$(PYTHON) $(PY) -m instructgpt.labeling.service

labels-push: venv
	$(PY) -m instructgpt.labeling push

labels-pull: venv
	$(PY) -m instructgpt.labeling pull

# Regenerate the demo world into data/ and version it (maintainers only: changes data.dvc). The
# shipped world's labeler noise is then re-calibrated on a label stage's real samples:
#   make run (at least to the label stage), then
#   python -m instructgpt.world.calibrate --data data --samples outputs/label/comparisons.jsonl
#   dvc add data && dvc push
world: venv
	$(PY) -m instructgpt.world.generate --out data --profile demo
	$(BIN)/dvc add data && $(BIN)/dvc push

# Pretrain the demo's base model at the pretrain profile's budget (~8 min idle on 2 cores) and
# version it as models/demo-base in the DVC remote (maintainers only: changes models/demo-base.dvc).
demo-base: venv data/prompts.jsonl
	$(PY) -m flows.profiles pretrain
	cd profiles/pretrain && $(CURDIR)/$(PY) -m dvc repro base
	rm -rf models/demo-base && cp -r profiles/pretrain/outputs/base/model models/demo-base
	$(BIN)/dvc add models/demo-base && $(BIN)/dvc push models/demo-base.dvc

# The measured commits of docs/RESULTS.md as local lightweight tags results/<what>-<commit>: a
# clone gets the commits but not the tags, so each tag is made from the commit its name ends with.
results-tags:
	@for t in $$(grep -o 'results/[a-z0-9-]*-[0-9a-f]\{7,\}' docs/RESULTS.md | sort -u); do \
		git tag -f $$t $${t##*-} >/dev/null && echo "$$t -> $$(git rev-parse --short $$t)" || exit 1; done

clean:
	rm -rf outputs reports .prefect profiles/*/
