"""Entrypoint of the scheduled deployment (prefect.yaml): the pipeline flow itself."""

from flows.pipeline import build_flow

nightly = build_flow()
