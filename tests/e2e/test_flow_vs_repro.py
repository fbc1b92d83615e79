"""Plain `dvc repro` gives the same outputs as the Prefect flow: the tiny profile run twice, once
by each, in two fresh workspaces (`make test-acceptance`: the second full run would double the
end-to-end time of `make test`)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import STAGES, cached_outs, run_flow
from tests.workspace import make_workspace, run

pytestmark = [pytest.mark.e2e, pytest.mark.acceptance]


def test_plain_dvc_repro_reproduces_the_flow(prefect_server, monkeypatch, tmp_path_factory):
    flowed = make_workspace(tmp_path_factory.mktemp("flow"))
    outcomes = run_flow(flowed, monkeypatch)
    assert [o["stage"] for o in outcomes] == STAGES and all(o["ran"] for o in outcomes), outcomes

    other = make_workspace(tmp_path_factory.mktemp("repro"))
    run(other, "dvc", "repro")
    assert cached_outs(other) == cached_outs(flowed)
    # plain dvc repro logs too: one run per stage, without a parent
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{other / 'mlflow/mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("instructgpt")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["stage"] for r in runs) == sorted(STAGES)
    assert not any("mlflow.parentRunId" in r.data.tags for r in runs)
