"""Running one step: a command, a callable (in a worker process), or a callable on Dask.

Every kind gets the same contract: the step's parameters in (``with``, after
substitution), a JSON object out (its *output*: metrics, paths, ids), a timeout after
which it is killed, and an error that says what failed.

- ``run``: a command (a list, or a string split like a shell would, without a shell)
  in its own process group, killed with the group at the timeout. Its output is the JSON
  object it writes to the file named by ``BASTION_STEP_OUTPUT`` (none: ``{}``); its
  inputs are in the file ``BASTION_STEP_INPUTS`` (the outputs of the steps it needs) and
  its parameters in ``BASTION_STEP_WITH`` (JSON). stdout and stderr go to ``step.log``.
- ``call``: ``module:function`` called with the ``with`` mapping as keyword arguments
  (plus ``inputs`` when the function takes it) in a pool of worker processes (pebble),
  so a step past its timeout is killed without touching the engine. It returns a
  mapping (or None).
- ``engine: dask``: the same call submitted to a Dask scheduler (``--dask ADDRESS``, or a
  ``LocalCluster`` started for the run), for steps that must scale out.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shlex
import signal
import subprocess
import sys
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import BastionError
from bastion.settings import child_environment


class StepFailed(BastionError):
    """The step ran and failed; retried when the step allows retries."""

    code = "step_failed"
    retryable = True


class StepTimedOut(StepFailed):
    code = "step_timed_out"
    retryable = False


class CriteriaNotMet(StepFailed):
    code = "criteria_not_met"
    retryable = False


@dataclass
class StepCall:
    run_id: str
    step: str
    workdir: Path
    with_: dict[str, Any]
    inputs: dict[str, Any]
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict)
    mlflow_tracking_uri: str | None = None

    def context(self) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return {
            "inputs": self.inputs,
            "workdir": str(self.workdir),
            "mlflow_tracking_uri": self.mlflow_tracking_uri,
        }


def _jsonable(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StepFailed(f"{what} returned {type(value).__name__}, not a mapping")
    try:
        # a round trip: NaN and objects that JSON cannot hold are refused here, once
        loaded: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False, default=str))
    except ValueError as exc:
        raise StepFailed(f"{what} returned a value JSON cannot hold: {exc}") from None
    return loaded


def run_command(argv: list[str] | str, call: StepCall) -> dict[str, Any]:
    args = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
    call.workdir.mkdir(parents=True, exist_ok=True)
    output, inputs = call.workdir / "output.json", call.workdir / "inputs.json"
    output.unlink(missing_ok=True)
    inputs.write_text(json.dumps(call.inputs))
    env = child_environment(
        call.env
        | {
            "BASTION_RUN_ID": call.run_id,
            "BASTION_STEP": call.step,
            "BASTION_STEP_OUTPUT": str(output),
            "BASTION_STEP_INPUTS": str(inputs),
            "BASTION_STEP_WITH": json.dumps(call.with_),
        }
    )
    _stop_leftover(call.workdir / "pid")
    with (call.workdir / "step.log").open("ab") as log:
        try:
            process = subprocess.Popen(  # noqa: S603 - the pipeline file's own command
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        except OSError as exc:
            raise StepFailed(f"cannot start {args[0]!r}: {exc.strerror or exc}") from None
        (call.workdir / "pid").write_text(str(process.pid))
        try:
            code = process.wait(timeout=call.timeout_s)
            (call.workdir / "pid").unlink(missing_ok=True)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise StepTimedOut(
                f"{args[0]} ran past its timeout of {call.timeout_s:g} s and was killed"
            ) from None
    if code != 0:
        tail = _tail(call.workdir / "step.log")
        raise StepFailed(f"{args[0]} exited with {code}" + (f": {tail}" if tail else ""))
    if not output.exists():
        return {}
    try:
        return _jsonable(json.loads(output.read_text()), args[0])
    except ValueError as exc:
        raise StepFailed(f"{output} is not a JSON object: {exc}") from None


def _stop_leftover(pidfile: Path) -> None:
    """A run whose engine was killed leaves its step's command running: before the step
    runs again, its process group is stopped (it leads its own session)."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    pidfile.unlink(missing_ok=True)
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-500:]


def invoke(target: str, kwargs: dict[str, Any], context: dict[str, Any]) -> Any:
    """Import ``module:function`` and call it (in a worker process, or on Dask).

    Besides its ``with`` parameters, a function receives what it declares of the
    run's context: ``inputs`` (the outputs of the steps it needs), ``workdir`` (a folder
    of its own) and ``mlflow_tracking_uri`` (where Bastion's registry reads runs)."""
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a pipeline's own modules, as `python -m` finds them
    function = getattr(importlib.import_module(module_name), attribute)
    accepts = inspect.signature(function).parameters
    return function(**kwargs, **{k: v for k, v in context.items() if k in accepts})


class CallablePool:
    """Worker processes for ``call`` steps; one that runs past its timeout is killed."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._pool: Any = None

    def run(self, target: str, call: StepCall) -> dict[str, Any]:
        import multiprocessing

        from pebble import ProcessExpired, ProcessPool

        if self._pool is None:
            # forkserver: the engine holds threads and database connections, which a
            # forked child must not inherit
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPool(max_workers=self.workers, context=context)
        future = self._pool.schedule(
            invoke, args=(target, call.with_, call.context()), timeout=call.timeout_s
        )
        try:
            result = future.result()
        except FutureTimeout:
            raise StepTimedOut(
                f"{target} ran past its timeout of {call.timeout_s:g} s and was killed"
            ) from None
        except ProcessExpired as exc:
            raise StepFailed(f"{target}: its worker process died ({exc})") from None
        except BastionError:
            raise
        except Exception as exc:  # the callable's own error, raised in the worker
            raise StepFailed(f"{target} raised {type(exc).__name__}: {exc}") from None
        return _jsonable(result, target)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None


def run_on_dask(address: str, target: str, call: StepCall) -> dict[str, Any]:
    from distributed import Client

    with Client(address, timeout=30) as client:  # type: ignore[no-untyped-call]
        future = client.submit(invoke, target, call.with_, call.context(), pure=False)
        try:
            result = future.result(timeout=call.timeout_s)
        except TimeoutError:
            future.cancel()
            raise StepTimedOut(
                f"{target} ran past its timeout of {call.timeout_s:g} s on Dask and was cancelled"
            ) from None
        except Exception as exc:
            raise StepFailed(f"{target} raised {type(exc).__name__} on Dask: {exc}") from None
    return _jsonable(result, target)
