"""The thin shell every stage shares: params, gate, atomic outputs, DVC metrics, MLflow.

A stage module defines ``def body(stage: Stage) -> None`` and ends with
``if __name__ == "__main__": raise SystemExit(main("sft", body))``. Inside the body:

- ``stage.config(Cls)`` fills the stage's config dataclass from its params.yaml section;
- ``stage.gate(tables)`` runs the Great Expectations suite (before any work);
- ``stage.path("outputs/sft/model")`` gives a staging path for a declared output; outputs move
  into place only when the body returns, so a failed stage writes nothing;
- ``stage.log(metrics, step)`` is the library's progress callback (MLflow + DVC plots);
- ``stage.metrics`` is written to the stage's DVC metrics file and logged to MLflow;
- ``stage.absent`` names figures an absent input left unmeasured, and why (no number is written);
- ``stage.place(model)`` puts a model on params.yaml ``compute``'s device; the body runs inside
  its precision scope (bf16 autocast where asked, nothing on the CPU default).

Exit codes: 0 ok, 1 unexpected error (retried by the flow), 2 bad params, 3 gate failed,
4 training diverged, 5 awaiting labels (2-5 are not retried: re-running cannot fix them; on 5 the
Prefect flow pauses until people have answered the exported tasks, instructgpt.labeling).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

import yaml

from instructgpt.config import ConfigError, ParamsLoader, flatten, from_dict, read_yaml, to_dict
from instructgpt.device import Compute, ComputeConfig, resolve
from tasks import lineage, tracking
from tasks.gates import GateFailed, GateResult, Table, run_gate

T = TypeVar("T")
M = TypeVar("M")
# Under torchrun every rank runs the stage; only rank 0 writes outputs and logs to MLflow.
RANK = int(os.environ.get("RANK", "0"))
EXIT_ERROR, EXIT_CONFIG, EXIT_GATE, EXIT_DIVERGED, EXIT_AWAITING = 1, 2, 3, 4, 5


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole params.yaml as a dict."""
    return read_yaml(path) or {}


_VAR = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


def _interpolate(node: Any, params: dict[str, Any]) -> Any:
    """Resolve dvc.yaml's ``${section.key}`` templating from params.yaml, as DVC does."""
    if isinstance(node, str):
        def value(m: re.Match) -> str:
            v: Any = params
            for part in m.group(1).split("."):
                if not isinstance(v, dict) or part not in v:
                    raise ConfigError(f"dvc.yaml uses ${{{m.group(1)}}}, which params.yaml does not define")
                v = v[part]
            return str(v)

        return _VAR.sub(value, node)
    if isinstance(node, list):
        return [_interpolate(x, params) for x in node]
    if isinstance(node, dict):
        return {_interpolate(k, params): _interpolate(v, params) for k, v in node.items()}
    return node


def dvc_stages(dvc_file: str | Path = "dvc.yaml", params_file: str | Path = "params.yaml") -> dict[str, Any]:
    """dvc.yaml's stages with ``${...}`` resolved from params.yaml."""
    with open(dvc_file) as f:
        stages = yaml.load(f, Loader=ParamsLoader)["stages"]
    return _interpolate(stages, load_params(params_file))


def declared_outputs(stage: str, dvc_file: str | Path = "dvc.yaml") -> dict[str, list[str]]:
    """The stage's deps, outs, metrics and plots as declared in dvc.yaml (the single source of truth)."""
    spec = dvc_stages(dvc_file)[stage]

    def paths(key: str) -> list[str]:
        out = []
        for item in spec.get(key, []) or []:
            out.append(next(iter(item)) if isinstance(item, dict) else item)
        return out

    return {"outs": paths("outs"), "metrics": paths("metrics"), "plots": paths("plots"), "deps": paths("deps")}


class Stage:
    """Everything a stage body needs; see the module docstring."""

    def __init__(self, name: str, params: dict[str, Any], run: Any | None, section: str | None = None,
                 compute: Compute | None = None) -> None:
        self.name = name
        self.compute = compute or resolve()
        """Device and autocast dtype of params.yaml ``compute`` (``instructgpt.device``)."""
        self.params = params
        self.section_name = section or name
        self.section: dict[str, Any] = params.get(self.section_name) or {}
        self.run = run
        self.metrics: dict[str, float] = {}
        self.absent: dict[str, str] = {}
        """Figures not measured because their input is absent: metric name -> why. They go to the
        metrics file's ``absent`` section and to MLflow tags ``absent/<name>``, never as a number."""
        self.gate_result: GateResult | None = None
        self._declared = declared_outputs(name)
        self._staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir="outputs"))
        self._curve: list[dict[str, float]] = []
        self._configs: dict[str, Any] = {}
        self._checkpoints: list[Path] = []
        self._journal: Path | None = None
        self.resumed_from_step: int | None = None
        """The step training resumed from (None: started afresh)."""
        self._t0 = time.time()
        if self.is_main:
            for old in Path("reports/gates").glob(f"{name}.*.json"):  # reports of an earlier run
                old.unlink(missing_ok=True)

    @property
    def is_main(self) -> bool:
        """False on the other ranks of a torchrun launch: they train, rank 0 writes and logs."""
        return RANK == 0

    def place(self, model: M) -> M:
        """``model`` on the stage's device (``compute.device``)."""
        return self.compute.place(model)

    # -- params -------------------------------------------------------------------------------
    def config(self, cls: type[T], key: str | None = None, overrides: dict[str, Any] | None = None,
               section: str | None = None) -> T:
        """Fill ``cls`` from ``params[stage]`` (or ``params[stage][key]``, or another top-level
        ``section`` such as ``rounds``) and record it.

        ``overrides`` replace params values before anything is recorded, so that the logged and
        saved config is exactly the one the trainer receives (e.g. ppo_noptx's ``ptx_coef: 0``)."""
        own = self.section if section is None else (self.params.get(section) or {})
        data = own if key is None else (own.get(key) or {})
        data = {**data, **(overrides or {})}
        where = section or self.section_name
        where = where if key is None else f"{where}.{key}"
        cfg = from_dict(cls, self._with_checkpoint_dirs(data), where)
        self._configs[where] = to_dict(cfg)
        if self.run is not None:
            import mlflow

            mlflow.log_params({k: _param(v) for k, v in flatten(to_dict(cfg), f"{where}.").items()})
            mlflow.log_dict(to_dict(cfg), f"config/{where}.json")
        return cfg

    def _with_checkpoint_dirs(self, data: dict[str, Any]) -> dict[str, Any]:
        """Give every (nested) section with ``checkpoint_every`` a ``checkpoint_dir`` keyed by the
        section's params and the content of the stage's inputs.

        A stage killed mid-training resumes from its last checkpoint when re-run with the same
        params and inputs; changed params or inputs start afresh. The key hashes file contents,
        not modification times, so a `dvc checkout` or a fresh clone still finds the checkpoint.
        The folder lives under ``outputs/.checkpoints`` (not a DVC output) and is removed once the
        stage succeeds. A resumed stage says so (stdout, MLflow tag ``resumed_from_step``) and
        restores the metrics logged before the kill from the folder's journal, so its curves cover
        the whole run."""
        keys: list[str] = []

        def key() -> str:  # hashing the inputs costs a read of them: only when a section checkpoints
            if not keys:
                signature = {"params": data, "inputs": self._inputs_signature()}
                keys.append(hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:12])
            return keys[0]

        def fill(node: Any, path: str) -> Any:
            if not isinstance(node, dict):
                return node
            node = {k: fill(v, f"{path}-{k}") for k, v in node.items()}
            if node.get("checkpoint_every") and not node.get("checkpoint_dir"):
                directory = Path("outputs/.checkpoints") / f"{path}-{key()}"
                self._checkpoints.append(directory)
                node["checkpoint_dir"] = str(directory)
                self._open_journal(directory)
            return node

        return fill(dict(data), self.name)

    def _inputs_signature(self) -> list[tuple[str, str]]:
        """(path, content hash) of every file this stage depends on, per dvc.yaml."""
        sig = []
        for dep in self._declared["deps"]:
            paths = sorted(Path(dep).rglob("*")) if Path(dep).is_dir() else [Path(dep)]
            for p in paths:
                if p.is_file() and "__pycache__" not in p.parts:
                    with open(p, "rb") as f:
                        sig.append((str(p), hashlib.file_digest(f, "blake2b").hexdigest()[:32]))
        return sig

    def _open_journal(self, directory: Path) -> None:
        """Metrics journal of a resumable run: restored (up to the checkpoint's step) on resume."""
        if not self.is_main or self._journal is not None:
            return
        from instructgpt.train.checkpoint import checkpoint_step

        directory.mkdir(parents=True, exist_ok=True)
        self._journal = directory / "journal.jsonl"
        step = checkpoint_step(directory)
        if step is None:  # a fresh start: a journal left by a run killed before its first checkpoint is stale
            self._journal.unlink(missing_ok=True)
            return
        self.resumed_from_step = step
        rows = [json.loads(line) for line in self._journal.read_text().splitlines()] if self._journal.exists() else []
        self._curve = [r for r in rows if r["step"] <= step]  # later steps are trained (and logged) again
        with open(self._journal, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self._curve)
        print(f"[{self.name}] resuming from the checkpoint at step {step} ({directory}); "
              f"{len(self._curve)} logged steps restored")
        if self.run is not None:
            import mlflow

            mlflow.set_tag("resumed_from_step", str(step))
            mlflow.log_param("resume.from_step", step)
            for row in self._curve:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "step"}, step=int(row["step"]))

    def save_config(self, directory: Path) -> None:
        """Write the resolved config(s) of this stage next to a checkpoint."""
        def portable(node: Any) -> Any:  # the checkpoint folder is a detail of this machine and run
            if isinstance(node, dict):
                return {k: portable(v) for k, v in node.items() if k != "checkpoint_dir"}
            return node

        (directory / "instructgpt_config.json").write_text(json.dumps(portable(self._configs), indent=2, default=str))

    # -- gate ---------------------------------------------------------------------------------
    def gate(self, tables: list[Table], part: str = "inputs") -> GateResult:
        """Run the GX suite; a failure stops the stage before any output is written."""
        if not self.is_main:  # rank 0 validates and reports; the others wait for it in training
            return GateResult(True, [], Path("reports/gates") / f"{self.name}.{part}.json")
        try:
            result = run_gate(self.name, tables, part)
        except GateFailed:
            self._log_gate_report(part, False)
            raise
        self.gate_result = result
        self._log_gate_report(part, True)
        print(f"[{self.name}] gate '{part}' passed: {len(result.checks)} expectations ({result.report_path})")
        return result

    def _log_gate_report(self, part: str, success: bool) -> None:
        path = Path("reports/gates") / f"{self.name}.{part}.json"
        if self.run is not None and path.exists():
            import mlflow

            mlflow.log_artifact(str(path), "gate")
            mlflow.set_tag(f"gate.{part}", "passed" if success else "failed")

    # -- outputs ------------------------------------------------------------------------------
    def path(self, target: str) -> Path:
        """Staging location for declared output ``target``; moved into place on success."""
        known = self._declared["outs"] + self._declared["metrics"] + self._declared["plots"]
        if target not in known:
            raise ValueError(f"{target} is not an output of stage '{self.name}' in dvc.yaml: {known}")
        p = self._staging / target
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Progress callback for the library: step-wise metrics to MLflow and the DVC plot."""
        clean = {k: float(v) for k, v in metrics.items() if _finite(v)}
        if self.run is not None and clean:
            import mlflow

            mlflow.log_metrics(clean, step=step)
        self._curve.append({"step": step, **clean})
        if self._journal is not None:
            with open(self._journal, "a") as f:
                f.write(json.dumps({"step": step, **clean}) + "\n")

    @property
    def curve(self) -> list[dict[str, float]]:
        """Every metrics row logged in this run, steps before a resume included."""
        return list(self._curve)

    def _write_metrics_and_curve(self) -> None:
        metrics_files = self._declared["metrics"]
        if metrics_files and not (self._staging / metrics_files[0]).exists():  # else the body wrote it
            payload = {k: v for k, v in self.metrics.items() if _finite(v)}
            payload["duration_s"] = round(time.time() - self._t0, 2)
            nested = _nest(payload)
            if self.absent:
                nested["absent"] = dict(self.absent)
            self.path(metrics_files[0]).write_text(json.dumps(nested, indent=2, sort_keys=True))
        for plot in self._declared["plots"]:
            if plot.endswith(".csv") and not self.path(plot).exists():
                _write_curve(self.path(plot), self._curve)

    def commit(self) -> None:
        """Move every staged output into place (rename: atomic per output)."""
        self._write_metrics_and_curve()
        missing = [
            t
            for t in self._declared["outs"] + self._declared["metrics"] + self._declared["plots"]
            if not (self._staging / t).exists()
        ]
        if missing:
            raise RuntimeError(f"stage '{self.name}' did not produce declared outputs: {missing}")
        for target in self._declared["outs"] + self._declared["metrics"] + self._declared["plots"]:
            dest = Path(target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            os.replace(self._staging / target, dest)
        for directory in self._checkpoints:  # finished: nothing left to resume
            shutil.rmtree(directory, ignore_errors=True)
        if self.run is not None:
            import mlflow

            clean = {k: float(v) for k, v in self.metrics.items() if _finite(v)}
            if clean:
                mlflow.log_metrics(clean)
            if self.absent:
                mlflow.set_tags({f"absent/{k}": v for k, v in self.absent.items()})
            for metrics_file in self._declared["metrics"]:
                mlflow.log_artifact(metrics_file, "dvc")

    def cleanup(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


class AwaitingLabels(RuntimeError):
    """People have not yet answered the tasks this stage exported: stop, say what and how to go on.

    ``tasks_file`` lists the exported tasks (JSONL, one task per line); ``answers`` is the
    directory their answers go into (a DVC dependency of the stage, so the next `dvc repro`
    re-runs it). A marker ``labels/outbox/<stage>.waiting.json`` tells the Prefect flow what it
    waits for (flows/pipeline.py pauses the flow run until it is resumed from the UI)."""

    def __init__(self, stage: str, kind: str, tasks_file: Path, pending: int, answered: int,
                 answers: Path, how: str = "") -> None:
        self.stage, self.kind, self.tasks_file, self.answers = stage, kind, Path(tasks_file), Path(answers)
        self.pending, self.answered = pending, answered
        super().__init__(
            f"awaiting labels: {pending} {kind} task(s) not yet answered ({answered} answered) - "
            f"exported to {tasks_file}. Answer them (Label Studio: `make labels-push`, label, then "
            f"`make labels-pull`; or write answers as JSONL into {answers}/, format in README), then "
            f"run `dvc repro` again (the Prefect flow waits: resume it from its UI)." + (f" {how}" if how else ""))

    @staticmethod
    def marker_of(stage: str) -> Path:
        return Path("labels/outbox") / f"{stage}.waiting.json"

    def marker(self) -> Path:
        return self.marker_of(self.stage)

    def write_marker(self) -> None:
        path = self.marker()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "stage": self.stage, "kind": self.kind, "tasks_file": str(self.tasks_file),
            "pending": self.pending, "answered": self.answered, "answers": str(self.answers),
            "message": str(self)}, indent=2))


def main(name: str, body: Callable[[Stage], None], section: str | None = None) -> int:
    """Run one stage: MLflow child run, body, atomic commit; map failures to exit codes.

    ``section`` is the params.yaml section to read when it differs from the stage name (two
    stages sharing one section, e.g. ppo and ppo_noptx)."""
    Path("outputs").mkdir(exist_ok=True)
    lineage.record_opens(name)
    if RANK == 0:
        # The marker says "this stage stopped for labels" to the flow and to scripts (README, "In a
        # script"): one left by an earlier stop would make any later failure read as waiting.
        AwaitingLabels.marker_of(name).unlink(missing_ok=True)
    try:
        params = load_params()
    except (OSError, yaml.YAMLError) as exc:
        print(f"[{name}] cannot read params.yaml: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        compute = resolve_compute(params, module_name(name))
    except ConfigError as exc:
        print(f"[{name}] FAILED: bad params: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    run_ctx = _start_run(name)
    with run_ctx as run:
        stage = Stage(name, params, run, section, compute)
        if stage.is_main:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            precision = "fp32" if compute.dtype is None else f"{str(compute.dtype).removeprefix('torch.')} autocast"
            print(f"[{name}] compute: {compute.device}, {precision}, {world} process{'es' if world > 1 else ''}",
                  flush=True)
        try:
            with compute.scope():  # autocast (bf16) for every forward pass of the stage, when asked
                body(stage)
            if stage.is_main:
                stage.commit()
        except ConfigError as exc:
            return _fail(name, run, f"{getattr(exc, 'kind', 'bad params')}: {exc}", EXIT_CONFIG)
        except GateFailed as exc:
            return _fail(name, run, str(exc), EXIT_GATE)
        except AwaitingLabels as exc:
            exc.write_marker()
            return _fail(name, run, str(exc), EXIT_AWAITING, verb="STOPPED")
        except Exception as exc:  # noqa: BLE001 - any other failure: report, exit non-zero
            if type(exc).__name__ == "TrainingDiverged":  # the library's non-finite-loss error
                return _fail(name, run, f"{exc}; no model was written", EXIT_DIVERGED)
            return _fail(name, run, traceback.format_exc(), EXIT_ERROR)
        finally:
            stage.cleanup()
    if stage.is_main:
        print(f"[{name}] done in {time.time() - stage._t0:.1f}s")
    return 0


def module_name(stage: str) -> str:
    """The ``tasks.<name>`` module that runs a DVC stage (ppo_noptx is ``tasks.ppo --no-ptx``,
    label_round2 ``tasks.label --round 2``, the same for rm and ppo)."""
    stage = stage.removesuffix("_round2")
    return "ppo" if stage == "ppo_noptx" else stage


def resolve_compute(params: dict[str, Any], module: str) -> Compute:
    """params.yaml ``compute`` (with ``compute.stages.<module>``) resolved on this machine; under
    torchrun also the process group: NCCL on CUDA devices (one GPU per local rank), gloo
    otherwise. ConfigError when the machine lacks what it asks for."""
    cfg = from_dict(ComputeConfig, params.get("compute") or {}, "compute").for_stage(module)
    compute = resolve(cfg, int(os.environ.get("LOCAL_RANK", "0")))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if compute.device.type == "cuda":
            import torch

            torch.cuda.set_device(compute.device)
        if not dist.is_initialized():
            dist.init_process_group(backend=compute.backend)
    return compute


def _start_run(name: str):
    """An MLflow run for this stage, child of the flow's parent run when there is one."""
    if os.environ.get("INSTRUCTGPT_NO_MLFLOW") == "1" or RANK != 0:
        return nullcontext(None)
    import mlflow

    exp_id = tracking.setup()
    parent = os.environ.get(tracking.PARENT_ENV) or None
    tags = {
        "stage": name,
        "git_commit": tracking.git_commit(),
        "dvc_lock": tracking.dvc_lock_hash(),
        "mlflow.source.git.commit": tracking.git_commit(),
    }
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect_flow_run_id"] = os.environ["PREFECT__FLOW_RUN_ID"]
    tags[tracking.PROCESS_TAG] = tracking.process_tag()
    for run_id in tracking.close_orphaned_runs(exp_id, f"tags.stage = '{name}'"):
        print(f"[{name}] MLflow run {run_id} of an earlier '{name}' process that was killed: marked KILLED")
    return mlflow.start_run(experiment_id=exp_id, run_name=name, parent_run_id=parent, tags=tags)


def _fail(name: str, run: Any, message: str, code: int, verb: str = "FAILED") -> int:
    print(f"[{name}] {verb}: {message}", file=sys.stderr)
    if run is not None:
        import mlflow

        mlflow.set_tag("failure", message[:5000])
        mlflow.end_run(status="FAILED")
    return code


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _param(v: Any) -> Any:
    s = json.dumps(v) if isinstance(v, (list, dict)) else v
    return s if not isinstance(s, str) or len(s) < 500 else s[:497] + "..."


def _nest(flat: dict[str, float]) -> dict[str, Any]:
    """{'valid/loss': 1} -> {'valid': {'loss': 1}} so `dvc metrics show` reads well."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a scalar already sits at that key
                break
        else:
            node[parts[-1]] = value
    return out


def _write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    """Step-wise metrics as CSV (DVC plots); metrics missing at a step are left empty."""
    keys: list[str] = ["step"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k.replace("/", "_") for k in keys])
        writer.writeheader()
        for row in rows:
            writer.writerow({k.replace("/", "_"): row.get(k, "") for k in keys})


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """A JSONL file as a list of dicts."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows as JSONL, keys in insertion order, one row a line."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
