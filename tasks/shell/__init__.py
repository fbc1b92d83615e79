"""The thin shell every stage shares: params, gate, atomic outputs, DVC metrics, MLflow.

A stage module defines ``def body(stage: Stage) -> None`` (``tasks.shell.stage``) and ends with
``if __name__ == "__main__": raise SystemExit(main("sft", body))`` (``tasks.shell.run``). Inside
the body:

- ``stage.config(Cls)`` fills the stage's config dataclass from its params.yaml section;
- ``stage.gate(tables)`` runs the Great Expectations suite (before any work);
- ``stage.path("outputs/sft/model")`` gives a staging path for a declared output; outputs move
  into place only when the body returns, so a failed stage writes nothing (``tasks.shell.outputs``);
- ``stage.log(metrics, step)`` is the library's progress callback (MLflow + DVC plots; a killed
  stage resumes with its curve, ``tasks.shell.journal``);
- ``stage.metrics`` is written to the stage's DVC metrics file and logged to MLflow;
- ``stage.absent`` names figures an absent input left unmeasured, and why (no number is written);
- ``stage.place(model)`` puts a model on params.yaml ``compute``'s device; the body runs inside
  its precision scope (bf16 autocast where asked, nothing on the CPU default);
- ``raise AwaitingLabels(...)`` (``tasks.shell.awaiting``) stops a stage that waits for people.

Exit codes (``tasks.shell.run``): 0 ok, 1 unexpected error (retried by the flow), 2 bad params,
3 gate failed, 4 training diverged, 5 awaiting labels.
"""
