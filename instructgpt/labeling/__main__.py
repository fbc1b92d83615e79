"""``python -m instructgpt.labeling push|pull``: exchange tasks and answers with Label Studio.

    push   import every tasks file of labels/outbox/ (rank_tasks.jsonl, judge_tasks.jsonl) into its
           Label Studio project (created on first push; ids kept in labels/outbox/studio.json)
    pull   write each project's export to labels/rankings/label_studio.json and
           labels/judgements/label_studio.json, where the pipeline and DVC see the answers

Configured by LABEL_STUDIO_URL (default http://127.0.0.1:8080) and LABEL_STUDIO_API_KEY (a legacy
token or a personal access token); without it, the token `make labelstudio` generated at its first
start (.secrets/labelstudio.env) for a Label Studio on this machine. ``make labels-push`` /
``make labels-pull`` run these.
"""

from __future__ import annotations

import argparse
import sys

from instructgpt.labeling.studio import Studio, StudioError, pull, push


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m instructgpt.labeling", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["push", "pull"])
    parser.add_argument("--outbox", default="labels/outbox", help="where the pipeline exports tasks")
    parser.add_argument("--root", default=".", help="project root that pull writes labels/... under")
    args = parser.parse_args(argv)
    try:
        studio = Studio()
        if args.command == "push":
            report = push(studio, args.outbox)
            if not report:
                print(f"nothing to push: no rank_tasks.jsonl or judge_tasks.jsonl in {args.outbox}/ "
                      f"(the label and evaluate stages write them when they wait for people)")
            for kind, r in report.items():
                print(f"{kind}: {r['tasks']} task(s) in {args.outbox}/{kind}.jsonl, {r['imported']} imported "
                      f"into project {r['project']} ({studio.url}/projects/{r['project']}/data)"
                      + (f", {r['overlap']} set to two annotators" if r["overlap"] else ""))
        else:
            report = pull(studio, args.outbox, args.root)
            if not report:
                print(f"nothing to pull: no project known for {studio.url} in {args.outbox}/studio.json (push first)")
            for kind, r in report.items():
                print(f"{kind}: {r['annotations']} annotation(s) on {r['tasks']} task(s) of project "
                      f"{r['project']} -> {r['file']}")
            if report:
                print("now run the pipeline again (dvc repro, or resume the waiting Prefect flow run)")
    except StudioError as exc:
        print(f"label studio: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
