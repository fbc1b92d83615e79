"""tasks.tracking: where a new experiment keeps its artifacts, and where run links point."""

from __future__ import annotations

from tasks import tracking


def test_local_store_keeps_artifacts_under_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    location = tracking.artifact_location(f"sqlite:///{tmp_path / 'mlflow/mlflow.db'}")
    assert location == (tmp_path / "mlflow/artifacts").as_uri()
    assert (tmp_path / "mlflow/artifacts").is_dir()


def test_tracking_server_keeps_its_own_artifact_root(tmp_path, monkeypatch):
    """With a server the experiment gets the server's default root (mlflow-artifacts:/ when it
    serves artifacts): no path of the machine that happened to create the experiment."""
    monkeypatch.chdir(tmp_path)
    assert tracking.artifact_location("http://mlflow.internal:5000") is None
    assert tracking.artifact_location("https://mlflow.example.org/") is None
    assert not (tmp_path / "mlflow").exists()


def test_run_links_point_at_the_tracking_server(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000/")
    assert tracking.run_url("3", "abc") == "http://mlflow.internal:5000/#/experiments/3/runs/abc"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/x/mlflow.db")
    assert tracking.run_url("3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.run_url("3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
