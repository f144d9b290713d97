"""The engine's generic command line over the toy definitions, run as a real subprocess."""

from __future__ import annotations

import argparse
import json
import os
import sys

from engine.cli import App, CliEnv, Command, main
from tests.engine.toy import DEFS, registry


def _start(args: argparse.Namespace, env: CliEnv[argparse.Namespace]) -> int:
    run_id = env.engine.start_run(args.definition, args.scope, json.loads(args.context), run_id=args.id)
    env.out({"run": run_id}, run_id)
    return 0


def _configure_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("definition")
    p.add_argument("scope")
    p.add_argument("--context", default="{}")
    p.add_argument("--id")


def _run(args: argparse.Namespace, env: CliEnv[argparse.Namespace]) -> int:
    env.engine.run_until_quiet()
    return 0


APP = App(
    prog="toy",
    definitions_dir=DEFS,
    registry=registry,
    context=lambda args: args,
    deps_factory=lambda context: lambda run: None,
    commands=[
        Command("start", "start a toy run", _configure_start, _start),
        Command("run", "drive runs until quiet", lambda p: None, _run),
    ],
    time_scale=lambda context: float(os.environ.get("TOY_TIME_SCALE", "1")),
)

if __name__ == "__main__":
    sys.exit(main(APP))
