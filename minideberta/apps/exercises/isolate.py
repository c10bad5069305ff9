"""One student's exercise in a process of its own: a hang, a crash or a broken copy stays on that record.

    record = run_isolated(folder, exercise, time_limit, memory_mb)

The child is a fresh interpreter (``python -B -c BOOT``). BOOT first limits the child's
address space (``resource.RLIMIT_AS``, where the OS has it), then loads *this* package, the
reference, under the name ``minideberta_reference``, puts the student's folder first on
``sys.path`` and imports ``minideberta``: inside the child that name is the student's copy, so a
student's function that calls ``minideberta.ops.layer_norm_backward`` calls their own code, not
the answer. The child writes its report as JSON into a file the parent named; stdout and stderr
(the student's prints) are kept apart. What the parent concludes:

| what happened                                              | status            |
| ---------------------------------------------------------- | ----------------- |
| every stage passed                                         | passed            |
| a stage failed, or raised an exception                     | failed            |
| the function still raises the stub's NotImplementedError   | not implemented   |
| still running at the time limit (killed, with its children)| time-out          |
| ``SystemExit``, ``os._exit``, a signal, a segfault          | crashed           |
| ``import minideberta`` failed, or found no student copy    | does not import   |
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .catalog import PACKAGE

STATUSES = ("passed", "failed", "not implemented", "time-out", "crashed", "does not import")
REFERENCE_ALIAS = "minideberta_reference"
STARTUP_SECONDS = 20  # a fresh interpreter importing NumPy and two copies of the package, on a busy machine
DEFAULT_MEMORY_MB = 2048
TAIL = 1500  # characters of the child's output kept for a crash's message

BOOT = """\
import importlib.util, os, sys
reference_init, memory_mb = sys.argv[1], int(sys.argv[2])
try:
    import resource
except ImportError:  # not on this OS: no memory limit
    resource = None
if resource is not None and memory_mb > 0:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
spec = importlib.util.spec_from_file_location({alias!r}, reference_init,
                                              submodule_search_locations=[os.path.dirname(reference_init)])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
from {alias}.apps.exercises.isolate import child_main
child_main(sys.argv[3:])
""".format(alias=REFERENCE_ALIAS)


def default_time_limit(exercise):
    """Seconds a student's run of ``exercise`` may take: start-up plus 20 times the reference's cost."""
    return STARTUP_SECONDS + 20 * exercise.seconds


def _write(path, record):
    Path(path).write_text(json.dumps(record), encoding="utf-8")


def _exit_status_code(error):
    return error.code if isinstance(error.code, int) else 1


def child_main(argv):
    """In the child: import the student's ``minideberta``, check one exercise, write the report."""
    import importlib

    folder, exercise_id, out = argv
    folder = str(Path(folder).resolve())
    sys.path.insert(0, folder)
    from . import catalog
    from .cases import Package, reference
    from .check import check_exercise

    init = Path(folder) / "minideberta" / "__init__.py"
    if not init.is_file():
        _write(out, {"status": "does not import", "message": f"{folder} holds no minideberta/ package; "
                     "make one with `python -m minideberta exercises make DIR`"})
        return
    try:
        student = importlib.import_module("minideberta")
    except BaseException as error:  # noqa: BLE001 (a SystemExit at import is the copy not importing too)
        _write(out, {"status": "does not import",
                     "message": f"your copy does not import: {type(error).__name__}: {error}"})
        return
    found = Path(getattr(student, "__file__", "") or "").resolve()
    if found != init.resolve():
        _write(out, {"status": "does not import",
                     "message": f"`import minideberta` found {found}, not the copy in {folder}"})
        return
    try:
        report = check_exercise(catalog.get(exercise_id), Package("minideberta"), reference())
    except SystemExit as error:
        _write(out, {"status": "crashed", "message": f"the code called exit ({error.code!r}): SystemExit "
                     "ends the program; a function returns its result instead"})
        return
    except KeyboardInterrupt:
        _write(out, {"status": "crashed", "message": "KeyboardInterrupt raised by the code"})
        return
    status = {"pass": "passed", "fail": "failed", "not implemented": "not implemented"}[report["status"]]
    _write(out, {"status": status, "report": report})


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(text):
    text = (text or b"").decode("utf-8", "replace").strip()
    return text if len(text) <= TAIL else "..." + text[-TAIL:]


def _read(path):
    """The child's report, or None if it wrote none (or was stopped while writing it)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _kill(process):
    """The child and anything it started (it leads its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        process.kill()


def run_isolated(folder, exercise, time_limit=None, memory_mb=DEFAULT_MEMORY_MB):
    """Check ``exercise`` on the copy in ``folder`` in a child process; return its record:
    ``{"status", "seconds", "message"?, "report"?, "output"?}`` (status one of STATUSES)."""
    time_limit = default_time_limit(exercise) if time_limit is None else time_limit
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # the student's folder goes first on the path inside the child, and only it
    with tempfile.TemporaryDirectory(prefix="minideberta-check-") as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-B", "-c", BOOT, str(PACKAGE / "__init__.py"), str(int(memory_mb or 0)),
                   str(Path(folder).resolve()), exercise.id, str(out)]
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=time_limit)
        except subprocess.TimeoutExpired:
            _kill(process)
            output, _ = process.communicate()
            record = _read(out)
            if record is not None:  # it reported, then did not end (a thread of its own still running)
                return {**record, "seconds": round(time.monotonic() - start, 2), "output": _tail(output)}
            return {"status": "time-out", "seconds": round(time.monotonic() - start, 2), "output": _tail(output),
                    "message": f"still running after {time_limit:g} s, stopped (an endless loop? the limit "
                               "is --timeout)"}
        seconds = round(time.monotonic() - start, 2)
        record = _read(out)
        if record is not None:
            return {**record, "seconds": seconds, "output": _tail(output)}
    code = process.returncode
    how = (f"killed by {_signal_name(-code)}" if code < 0 else f"ended with exit status {code}")
    return {"status": "crashed", "seconds": seconds, "output": _tail(output),
            "message": f"the process {how} before reporting (os._exit, a signal, a segfault, or out of memory "
                       f"under the limit of {memory_mb} MB)"}
