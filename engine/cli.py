"""The generic command line an application extends with its own subcommands.

``main(App(...))`` gives every application the operator surface: ``status``, ``approve``,
``advance``, ``retry``, ``abort``, ``submit``, ``hold``, ``release``, ``audit export|verify``,
``graph`` and ``daemon``.
Exit codes: 0 ok, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TextIO, TypeVar

from engine.anchor import KEY_ENV, LOG_ENV, AnchorPaths
from engine.api import JSON, Registry
from engine.audit import AuditError
from engine.daemon import PeriodicJob
from engine.definition import Definition, DefinitionError, load_definitions, to_mermaid
from engine.errors import EngineError
from engine.facade import Engine
from engine.files import FileRefused, read_small_text
from engine.logging import configure_logging
from engine.store import StoreFatal
from engine.views import RunView, iso

STATE_ENV = "CUCM_RENEW_STATE"

C = TypeVar("C")
"""The application's context: what one command knows beside its arguments (its configuration,
the adapters built from it). Built once per command by :attr:`App.context`, handed to every hook."""


@dataclass
class Command(Generic[C]):
    """An extra subcommand supplied by the application."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, CliEnv[C]], int]
    read_only: bool = False
    """The command only reads the state folder (see :attr:`CliEnv.read_only`)."""


def _no_jobs(context: object, env: object) -> Sequence[PeriodicJob]:
    return ()


def _no_services(context: object, env: object) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclass
class App(Generic[C]):
    prog: str
    definitions_dir: Path
    registry: Registry
    context: Callable[[argparse.Namespace], C]
    """Builds the command's context from its arguments; it should load what it needs lazily, so
    that commands reading only the state folder need no configuration."""
    deps_factory: Callable[[C], Callable[[RunView], Any]]
    """Builds the per-run dependencies from the context."""
    commands: list[Command[C]] = field(default_factory=list)
    time_scale: Callable[[C], float] = lambda context: 1.0
    description: str = ""
    daemon_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    """Adds the application's options to ``daemon``."""
    daemon_jobs: Callable[[C, CliEnv[C]], Sequence[PeriodicJob]] = _no_jobs
    """What the daemon does on a schedule beside driving runs (e.g. start the runs that came due)."""
    daemon_services: Callable[[C, CliEnv[C]], contextlib.AbstractContextManager[None]] = _no_services
    """What runs beside the daemon while it serves (a metrics endpoint, a notifier): entered after
    ``daemon_jobs`` are built and before the engine serves, left once it has stopped."""
    close: Callable[[C], None] = lambda context: None
    """Releases what the context holds (connection pools) when the command ends."""
    status_notes: Callable[[CliEnv[C], Sequence[RunView]], str] = lambda env, runs: ""
    """Text ``status`` prints after the runs (not with --json): what the application wants an
    operator to see about them."""
    status_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    """Adds the application's options to ``status`` (e.g. a live view)."""
    status_command: Callable[[argparse.Namespace, CliEnv[C]], int | None] = lambda args, env: None
    """Runs first in ``status``: an exit code ends the command there; None goes on as usual."""
    check_definitions: Callable[[Mapping[str, Definition]], None] = lambda definitions: None
    """The application's own checks of the loaded definitions (e.g. that the state names its guards
    compare against exist); raises DefinitionError. Runs once, as the definitions are loaded."""
    scope_word: str = "scope"
    """What the application calls a scope (``hold`` and ``release`` name it so)."""
    audit_settings: Callable[[C], Mapping[str, Any]] = lambda context: {}
    """Where the application's configuration puts the audit key and checkpoint log (``key``,
    ``log``, ``syslog``); the command line and the environment take precedence."""


class UsageError(Exception):
    """Bad arguments that argparse could not catch; exit code 2."""


class CliEnv(Generic[C]):
    """What a subcommand handler gets: the state folder, definitions, the application's context, a
    lazily built engine and output helpers that honour ``--json``."""

    def __init__(self, app: App[C], args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.app = app
        self.args = args
        self.context: C = app.context(args)
        self.state_dir = Path(args.state_dir)
        self.json = bool(getattr(args, "json", False))
        self.stdout = stdout
        self.stderr = stderr
        self._definitions: dict[str, Definition] | None = None
        self._engine: Engine | None = None

    @property
    def definitions(self) -> dict[str, Definition]:
        if self._definitions is None:
            definitions = load_definitions(self.app.definitions_dir, self.app.registry)
            self.app.check_definitions(definitions)
            self._definitions = definitions
        return self._definitions

    @property
    def read_only(self) -> bool:
        """The command only reads the state folder: it must hold a database, opened read-only."""
        return bool(getattr(self.args, "read_only", False))

    def anchor(self) -> AnchorPaths:
        """Where the audit key and checkpoint log are: ``--audit-key``/``--audit-log``, else the
        environment, else the application's configuration, else the state folder."""
        args = self.args
        configured: Mapping[str, Any] = {}
        if not (args.audit_key or os.environ.get(KEY_ENV)) or not (args.audit_log or os.environ.get(LOG_ENV)):
            configured = self.app.audit_settings(self.context)
        default = AnchorPaths.default(self.state_dir)
        key = args.audit_key or os.environ.get(KEY_ENV) or configured.get("key") or default.key
        log = args.audit_log or os.environ.get(LOG_ENV) or configured.get("log") or default.log
        return AnchorPaths(Path(key), Path(log), syslog=bool(args.audit_syslog or configured.get("syslog")))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(
                self.state_dir,
                self.definitions,
                self.app.registry,
                self.app.deps_factory(self.context),
                time_scale=self.app.time_scale(self.context),
                anchor=self.anchor(),
                read_only=self.read_only,
            )
        return self._engine

    def close(self) -> None:
        try:
            if self._engine is not None:
                self._engine.close()
        finally:
            self.app.close(self.context)

    def out(self, data: JSON, text: str | None = None) -> None:
        """Print ``data`` as JSON with ``--json``, else ``text`` (or ``data`` as it is)."""
        if self.json or text is None:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        else:
            self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def err(self, message: str) -> None:
        self.stderr.write(f"{self.app.prog}: error: {message}\n")
        self.stderr.flush()


def format_status(runs: Sequence[RunView], *, detail: bool = False) -> str:
    """Operator-readable status: one line per run, or a block per run with ``detail``."""
    if not runs:
        return "no runs"
    lines = []
    for r in runs:
        state = f"{r.state} (from {r.held_from})" if r.held_from else r.state
        wake = f", next {iso(r.next_wake_at)}" if r.next_wake_at and r.status == "active" else ""
        why = f" - {r.waiting_reason}" if r.waiting_reason else ""
        lines.append(f"{r.id}  {r.definition}/{r.scope}  {state}{why}{wake}")
        if detail:
            lines.append(f"  status: {r.status}, attempt {r.attempt}")
            if r.last_error:
                lines.append(f"  last error: {r.last_error}")
            for node, text in r.progress.items():
                lines.append(f"  {node}: {text}")
    return "\n".join(lines)


def format_holds(holds: Sequence[Any], word: str = "scope") -> str:
    """One line per scope on hold, with who put it there, since when and why."""
    return "\n".join(
        f"{word} {h.scope} ON HOLD since {iso(h.since)} by {h.actor}: {h.reason} "
        f"(`release {h.scope}` lifts it)"
        for h in holds
    )


def _read_submission(path: str) -> JSON:
    try:
        text = read_small_text(path, "--file")
    except FileRefused as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read --file {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _cmd_status(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    code = env.app.status_command(args, env)
    if code is not None:
        return int(code)
    runs = env.engine.status(args.run)
    text = format_status(runs, detail=args.run is not None)
    holds = [h for h in env.engine.holds() if args.run is None or any(r.scope == h.scope for r in runs)]
    if holds:
        text = format_holds(holds, env.app.scope_word) + "\n" + text
    notes = env.app.status_notes(env, runs) if not env.json else ""
    env.out([r.as_dict() for r in runs], text + ("\n" + notes if notes else ""))
    return 0


def _cmd_hold(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    hold = env.engine.hold(args.scope, args.reason)
    data = {"scope": hold.scope, "reason": hold.reason, "actor": hold.actor, "since": iso(hold.since)}
    env.out(data, f"{env.app.scope_word} {hold.scope} on hold: {hold.reason}")
    return 0


def _cmd_release(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    hold = env.engine.release(args.scope, reason=args.reason)
    data = {"scope": hold.scope, "released": True, "held_since": iso(hold.since), "held_by": hold.actor}
    since = iso(hold.since)
    env.out(data, f"{env.app.scope_word} {hold.scope} released (on hold since {since} by {hold.actor})")
    return 0


def _cmd_approve(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    run = env.engine.approve(args.run, reason=args.reason)
    env.out(run.as_dict(), f"approved {run.id}: now {run.state}")
    return 0


def _cmd_advance(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    run = env.engine.advance(args.run, args.to, args.reason)
    env.out(run.as_dict(), f"advanced {run.id}: now {run.state}")
    return 0


def _cmd_retry(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    run = env.engine.retry(args.run)
    env.out(run.as_dict(), f"retrying {run.id} in {run.state}")
    return 0


def _cmd_abort(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    run = env.engine.abort(args.run, args.reason)
    env.out(run.as_dict(), f"aborted {run.id}")
    return 0


def _cmd_submit(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    run = env.engine.submit(args.run, args.key, _read_submission(args.file))
    env.out(run.as_dict(), f"submitted {args.key} to {run.id}")
    return 0


def _cmd_audit(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    if args.audit_command == "verify":
        result = env.engine.verify_audit()
        env.out(result.as_dict(), str(result))
        return 0 if result.ok else 1
    with contextlib.ExitStack() as stack:
        out: TextIO = env.stdout
        if args.output:
            out = stack.enter_context(open(args.output, "w", encoding="utf-8", newline=""))
        count = env.engine.export_audit(out, args.format, run=args.run, scope=args.scope, since=args.since)
    if args.output:
        env.stderr.write(f"{count} events written to {args.output}\n")
    return 0


def _cmd_graph(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    defn = env.definitions.get(args.definition)
    if defn is None:
        raise UsageError(
            f"unknown definition {args.definition!r}: use one of {', '.join(sorted(env.definitions))}"
        )
    env.stdout.write(to_mermaid(defn))
    return 0


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, so the engine stops cleanly between steps."""
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _cmd_daemon(args: argparse.Namespace, env: CliEnv[Any]) -> int:
    jobs = env.app.daemon_jobs(env.context, env)
    with stop_on_signals() as stop, env.app.daemon_services(env.context, env):
        env.engine.serve(stop, jobs=jobs)
    return 0


def build_parser(app: App[C]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=app.prog, description=app.description or None)
    parser.add_argument(
        "--state-dir",
        default=os.environ.get(STATE_ENV, "./state"),
        help=f"state folder (default: ${STATE_ENV} or ./state)",
    )
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--audit-key",
        metavar="FILE",
        help=f"the audit trail's MAC key (default: ${KEY_ENV}, the configuration, else STATE_DIR/audit.key; "
        "created 0600 on first use). Keep it outside the state folder to anchor the trail against "
        "whoever can write the database",
    )
    parser.add_argument(
        "--audit-log",
        metavar="FILE",
        help=f"the append-only log of audit checkpoints (default: ${LOG_ENV}, the configuration, else "
        "STATE_DIR/audit-checkpoints.log)",
    )
    parser.add_argument(
        "--audit-syslog", action="store_true", help="also send each audit checkpoint to syslog"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        help_text: str,
        handler: Callable[[argparse.Namespace, CliEnv[C]], int],
        *,
        read_only: bool = False,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler, read_only=read_only)
        return p

    p = add("status", "show runs: state, what each waits for and why, next wake", _cmd_status, read_only=True)
    p.add_argument("run", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON")
    app.status_options(p)
    p = add("approve", "release a run paused at a gate", _cmd_approve)
    p.add_argument("run")
    p.add_argument("--reason", default="")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("advance", "move a run by hand to a state the definition allows from where it is", _cmd_advance)
    p.add_argument("run")
    p.add_argument("--to", required=True, metavar="STATE")
    p.add_argument("--reason", required=True, metavar="TEXT")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("retry", "retry a failed run in the state it failed in", _cmd_retry)
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("abort", "stop a run for good", _cmd_abort)
    p.add_argument("run")
    p.add_argument("--reason", required=True, metavar="TEXT")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("submit", "attach data (a JSON or text file) to a run waiting for it", _cmd_submit)
    p.add_argument("run")
    p.add_argument("--key", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    word = app.scope_word
    p = add("hold", f"stop what the guards stop on a held {word} until `release`", _cmd_hold)
    p.add_argument("scope", metavar=word.upper())
    p.add_argument("--reason", required=True, metavar="TEXT")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("release", f"lift the hold on a {word}", _cmd_release)
    p.add_argument("scope", metavar=word.upper())
    p.add_argument("--reason", default="", metavar="TEXT")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("audit", "export or verify the audit trail", _cmd_audit, read_only=True)
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    exp = audit.add_parser("export", help="write events as JSON Lines or CSV")
    exp.add_argument("--format", default="jsonl", choices=["jsonl", "csv"])
    exp.add_argument("--run")
    exp.add_argument("--scope", "--cluster", dest="scope")
    exp.add_argument("--since", help="ISO date or timestamp (UTC)")
    exp.add_argument("--output", help="file to write (default: standard output)")
    ver = audit.add_parser("verify", help="check the hash chain; exit 1 at the first broken event")
    ver.add_argument("--json", action="store_true", help="print JSON")
    p = add("graph", "print a definition as a Mermaid state diagram", _cmd_graph, read_only=True)
    p.add_argument("definition")
    p = add("daemon", "resume every run and drive them until SIGTERM", _cmd_daemon)
    app.daemon_options(p)
    for command in app.commands:
        p = add(command.name, command.help, command.handler, read_only=command.read_only)
        command.configure(p)
    return parser


def main(
    app: App[C], argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser(app)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    configure_logging(args.log_level)
    env = CliEnv(app, args, out, err)
    try:
        return int(args.handler(args, env))
    except UsageError as exc:
        env.err(str(exc))
        return 2
    except (EngineError, DefinitionError, AuditError, StoreFatal) as exc:
        env.err(str(exc))
        return 1
    except KeyboardInterrupt:
        env.err("interrupted")
        return 1
    except BrokenPipeError:
        # The reader went away (`audit export | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    finally:
        env.close()
