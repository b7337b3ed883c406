"""Scale-out on a Dask cluster: inspection and feature extraction split by wafer ranges.

``wafertk classify/detect/features --scheduler ADDRESS`` (a running ``dask.distributed``
scheduler) or ``--scheduler local[:N]`` (a :class:`~distributed.LocalCluster` of N worker
processes, started and stopped by the command). Dask is an optional extra
(``pip install 'wafertk[dask]'``), imported only here and only when a scheduler is asked for.

How a run is split and put back together:

* The inputs (one file, a list, or a glob) are opened and checked on the client first (schema,
  wafer ids, same class list and labelled-ness in every file); nothing is submitted before.
* Each file is cut into **ranges** of whole batches (``rows`` a multiple of ``batch_size``,
  starting at a multiple of it), so every worker reads its own contiguous slice of the HDF5
  datasets and runs exactly the batches the single-process run would: the output is the same,
  byte for byte.
* A range is one Dask task. A worker loads the models once (cached per worker process) and
  returns the range's ``predictions.csv`` rows as text plus a
  :class:`~wafertk.report.BatchReportBuilder` of the range (bounded summaries and
  thumbnails, not the rows); the client appends the rows in range order into the staged output
  and merges the builders. At most a few ranges per worker are in flight, so the client holds
  a bounded number of results whatever the file size.
* A worker that dies: the scheduler re-runs its ranges elsewhere (Dask's own mechanism,
  ``distributed.scheduler.allowed-failures``); the client takes each range's result exactly
  once, in order, so nothing is lost or duplicated.

Without a scheduler and with several files, the same ranges are run in this process, one after
the other (:class:`InProcess`).
"""

from __future__ import annotations

import contextlib
import glob
import io
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wafertk.errors import WaferFileError, WafertkError

log = logging.getLogger(__name__)

#: Ranges a run keeps in flight per worker (bounds the client's memory).
IN_FLIGHT_PER_WORKER = 3
#: Batches per range by default (fewer when that leaves workers idle).
BATCHES_PER_RANGE = 16
#: Seconds to wait for a scheduler to answer, and for it to have a worker.
CONNECT_TIMEOUT = 5.0
WORKER_TIMEOUT = 60.0

_LOCAL = re.compile(r"local(?::(.*))?")


# ------------------------------------------------------------------------------- scheduler
@dataclass(frozen=True)
class SchedulerSpec:
    """A parsed ``--scheduler`` value.

    Attributes
    ----------
    local : bool
        ``local[:N]``: a LocalCluster started for the run.
    n_workers : int or None
        Worker processes of the local cluster (None: one per CPU core).
    address : str or None
        The address of a running scheduler (``tcp://host:8786``, ``host:8786``).
    """

    local: bool
    n_workers: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.local:
            return "local" if self.n_workers is None else f"local:{self.n_workers}"
        return str(self.address)


def parse_scheduler(spec: str) -> SchedulerSpec:
    """Parse ``local``, ``local:N`` or a scheduler address (checked for form only).

    Raises
    ------
    WafertkError
        An empty value, ``local:`` with anything but a positive integer, or an address
        without a port.

    Examples
    --------
    >>> parse_scheduler("local:2")
    SchedulerSpec(local=True, n_workers=2, address=None)
    >>> parse_scheduler("tcp://10.0.0.5:8786").address
    'tcp://10.0.0.5:8786'
    """
    text = str(spec).strip()
    if not text:
        raise WafertkError("--scheduler is empty: give local, local:N or a scheduler address "
                           "(tcp://host:8786)")
    m = _LOCAL.fullmatch(text)
    if m:
        if m.group(1) is None:
            return SchedulerSpec(local=True)
        n = m.group(1)
        if not n.isdigit() or int(n) < 1:
            raise WafertkError(f"--scheduler {text!r}: local:N needs N, the number of worker "
                               "processes, as a positive integer (e.g. local:2)")
        return SchedulerSpec(local=True, n_workers=int(n))
    hostport = text.split("://", 1)[-1]
    if ":" not in hostport or not hostport.rsplit(":", 1)[1].isdigit():
        raise WafertkError(f"--scheduler {text!r}: not local[:N] nor a scheduler address "
                           "with a port (tcp://host:8786)")
    return SchedulerSpec(local=False, address=text if "://" in text else f"tcp://{text}")


def import_distributed():
    """``distributed``, or an error saying how to install the extra."""
    try:
        import distributed
    except ImportError:
        raise WafertkError("--scheduler needs Dask, an optional extra: "
                           "pip install 'wafertk[dask]'") from None
    return distributed


@contextlib.contextmanager
def connect(scheduler, *, tf_threads: int | None = None,
            timeout: float = CONNECT_TIMEOUT) -> Iterator:
    """A :class:`distributed.Client` for ``scheduler``, closed (and a local cluster stopped)
    on exit.

    Parameters
    ----------
    scheduler : str, SchedulerSpec or distributed.Client
        ``"local[:N]"``, a scheduler address, or a client (used as is, left open).
    tf_threads : int, optional
        TensorFlow threads per local worker (default: the cores shared out among workers).
    timeout : float
        Seconds to reach the scheduler.

    Raises
    ------
    WafertkError
        Dask not installed, the scheduler unreachable, or no worker joining it in
        :data:`WORKER_TIMEOUT` seconds.
    """
    distributed = import_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    spec = scheduler if isinstance(scheduler, SchedulerSpec) else parse_scheduler(scheduler)
    if spec.local:
        n = spec.n_workers or (os.cpu_count() or 1)
        threads = tf_threads or max(1, (os.cpu_count() or 1) // n)
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "WAFERTK_TF_THREADS": str(threads),
               "OMP_NUM_THREADS": str(threads)}
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR, env=env))
            client = stack.enter_context(distributed.Client(cluster))
            yield client
        return
    try:
        client = distributed.Client(spec.address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else "no answer"
        raise WafertkError(f"cannot reach the Dask scheduler at {spec.address} ({why})"
                           ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except (TimeoutError, OSError):
            raise WafertkError(f"the Dask scheduler at {spec.address} has no worker (none "
                               f"joined in {WORKER_TIMEOUT:.0f} s)") from None
        yield client
    finally:
        client.close()


def n_workers(client) -> int:
    """Workers connected to ``client``'s scheduler (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))


class InProcess:
    """Runs ranges in this process, in order: the executor without a scheduler."""

    n_workers = 1

    def map_ordered(self, func: Callable, args: Iterable[tuple], **_) -> Iterator:
        """``func(*a)`` for each ``a`` of ``args``, in order."""
        for a in args:
            yield func(*a)


class DaskExecutor:
    """Submits ranges to a Dask client and yields their results in submission order.

    At most ``window`` tasks are in flight; each result is fetched once and released, so the
    client holds a bounded number of results and a re-run task (a lost worker) is never
    taken twice.
    """

    def __init__(self, client) -> None:
        self.client = client
        self.n_workers = n_workers(client)

    def map_ordered(self, func: Callable, args: Iterable[tuple], *, name: str = "wafertk",
                    window: int | None = None) -> Iterator:
        """``func(*a)`` for each ``a`` of ``args`` on the cluster, yielded in order.

        Task keys are ``f"{name}-{run token}-{index}"``.
        """
        import uuid

        window = window or IN_FLIGHT_PER_WORKER * self.n_workers
        token = uuid.uuid4().hex[:8]
        pending: deque = deque()
        it = enumerate(args)

        def submit_next() -> bool:
            try:
                i, a = next(it)
            except StopIteration:
                return False
            pending.append(self.client.submit(func, *a, key=f"{name}-{token}-{i}",
                                              pure=False))
            return True

        try:
            while len(pending) < window and submit_next():
                pass
            while pending:
                fut = pending.popleft()
                res = fut.result()
                fut.release()
                submit_next()
                yield res
        finally:
            if pending:
                self.client.cancel(list(pending))


# ------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class InputFile:
    """One checked input file: its wafer count and what must agree across files."""

    path: Path
    n: int
    has_labels: bool
    class_names: tuple[str, ...]


def expand_inputs(specs: str | os.PathLike | Sequence) -> list[Path]:
    """Paths of the inputs: files as given, in order, and globs expanded (sorted).

    A name that exists is taken literally even if it holds ``*`` or ``?``.

    Raises
    ------
    WafertkError
        No input, or a glob that matches no file.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    out: list[Path] = []
    for s in specs:
        text = os.fspath(s)
        if not os.path.exists(text) and glob.has_magic(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not found:
                raise WaferFileError(text, "no file matches this pattern")
            out.extend(Path(p) for p in found)
        else:
            out.append(Path(text))
    if not out:
        raise WafertkError("no input file given")
    seen: set = set()
    for p in out:
        key = os.path.realpath(p)
        if key in seen:
            raise WaferFileError(p, "given twice as an input")
        seen.add(key)
    return out


def check_inputs(paths: Sequence[str | os.PathLike], *, allow_empty: bool = False
                 ) -> list[InputFile]:
    """Open and check every input (the whole-file checks of :class:`WaferFile`), and that
    they share one schema: the same class list and all labelled or all unlabelled.

    Raises
    ------
    WaferFileError
        Naming the first file that fails, or the first that differs from the first file.
    """
    from wafertk.data.h5 import WaferFile

    files = []
    for p in paths:
        with WaferFile(p, allow_empty=allow_empty) as f:
            files.append(InputFile(Path(p), len(f), bool(f.has_labels), tuple(f.class_names)))
    first = files[0]
    for f in files[1:]:
        if f.class_names != first.class_names:
            raise WaferFileError(f.path, f"class list differs from {first.path}'s "
                                 "(all inputs of one run need the same schema)")
        if f.has_labels != first.has_labels:
            has, lacks = (f, first) if f.has_labels else (first, f)
            raise WaferFileError(f.path, f"{has.path} has labels and {lacks.path} has none "
                                 "(all inputs of one run need the same schema)")
    return files


def _checked(inputs, *, allow_empty: bool = False) -> list[InputFile]:
    """``inputs`` as checked files (a list of :class:`InputFile` is taken as already checked)."""
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(f, InputFile)
                                                            for f in inputs):
        return list(inputs)
    return check_inputs(expand_inputs(inputs), allow_empty=allow_empty)


def plan_ranges(files: Sequence[InputFile], batch_size: int, *, n_workers: int = 1,
                rows: int | None = None) -> list[tuple[str, int, int]]:
    """``(path, start, stop)`` ranges of whole batches covering every file, in order.

    Parameters
    ----------
    files : sequence of InputFile
    batch_size : int
    n_workers : int, default 1
        Ranges are made small enough to give each worker at least four.
    rows : int, optional
        Wafers per range, rounded up to a multiple of ``batch_size`` (default
        :data:`BATCHES_PER_RANGE` batches, fewer for small inputs).
    """
    total = sum(f.n for f in files)
    if rows is None:
        per = -(-total // max(1, 4 * n_workers))
        rows = min(BATCHES_PER_RANGE * batch_size, max(batch_size, per))
    rows = max(batch_size, -(-int(rows) // batch_size) * batch_size)
    return [(os.fspath(f.path), a, min(a + rows, f.n)) for f in files
            for a in range(0, f.n, rows)]


# ------------------------------------------------------------------------------- inspection
@dataclass(frozen=True)
class InspectSpec:
    """What a worker needs to build the inspection model (hashable: the per-worker cache key).

    ``detector`` / ``classifier`` are shipped model names or absolute model folders.
    """

    mode: str
    detector: str | None
    classifier: str | None
    threshold: float | None
    review_below: float | None
    batch_size: int
    report: bool
    columns: tuple[str, ...]


@dataclass
class RangeResult:
    """What one range sends back: its CSV rows, counts, and its report summary."""

    csv: str
    n: int
    n_defective: int
    n_review: int
    settings: dict
    builder: object | None = None
    worker_pid: int = 0
    peak_rss_kib: int = 0


_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


def _model_spec(spec) -> str | None:
    """A model given on the client as a name or path, as workers can find it."""
    if spec is None:
        return None
    if isinstance(spec, os.PathLike) or os.path.exists(str(spec)):
        return os.path.abspath(os.fspath(spec))
    return str(spec)


def _configure_tensorflow() -> None:
    threads = os.environ.get("WAFERTK_TF_THREADS")
    if not threads:
        return
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised in this process
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(threads))))


#: Model sets a worker process keeps loaded (the most recently used ones).
MODELS_KEPT = 2


def worker_model(spec: InspectSpec):
    """The :class:`~wafertk.inspect.TwoPhaseClassifier` of ``spec``, loaded once per process.

    Kept for later ranges and later runs with the same models and decisions (at most
    :data:`MODELS_KEPT` sets per process).
    """
    key = (spec.mode, spec.detector, spec.classifier, spec.threshold, spec.review_below)
    with _MODELS_LOCK:
        model = _MODELS.pop(key, None)
        if model is None:
            from wafertk.inspect.model import TwoPhaseClassifier
            from wafertk.inspect.runner import (
                load_anomaly_inspector,
                load_classifier,
                load_detector,
            )

            _configure_tensorflow()
            if spec.mode == "anomaly":
                model = load_anomaly_inspector(spec.detector, spec.threshold)
            else:
                det = load_detector(spec.detector) if spec.mode != "single-phase" else None
                clf = load_classifier(spec.classifier) if spec.mode != "detect" else None
                model = TwoPhaseClassifier(det, clf, mode=spec.mode,
                                           threshold=spec.threshold,
                                           review_below=spec.review_below)
        _MODELS[key] = model  # most recent last
        while len(_MODELS) > MODELS_KEPT:
            _MODELS.pop(next(iter(_MODELS)))
    return model


def _peak_rss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def inspect_range(spec: InspectSpec, path: str, start: int, stop: int) -> RangeResult:
    """Run the inspection of ``spec`` over wafers ``start:stop`` of ``path`` (a worker task).

    Batches start at ``start``, so a ``start`` that is a multiple of ``spec.batch_size`` gives
    the single-process run's batches and so its exact rows.
    """
    from wafertk.data.h5 import WaferFile
    from wafertk.inspect.output import PredictionWriter
    from wafertk.inspect.runner import stream_predictions

    model = worker_model(spec)
    builder = None
    if spec.report:
        from wafertk.report import BatchReportBuilder

        builder = BatchReportBuilder(mode=model.mode)
    buf = io.StringIO(newline="")
    writer = PredictionWriter(buf, list(spec.columns), header=False)
    with WaferFile(path, full_checks=False) as wf:
        # the single-process runner's batch loop (reading ahead in a thread)
        n, n_def, n_rev = stream_predictions(
            model, wf.iter_batches(spec.batch_size, start=start, stop=stop), writer,
            batch_size=spec.batch_size, labels="label" in spec.columns, builder=builder)
    return RangeResult(csv=buf.getvalue(), n=n, n_defective=n_def, n_review=n_rev,
                       settings=model.describe(), builder=builder, worker_pid=os.getpid(),
                       peak_rss_kib=_peak_rss_kib())


def inspect_files(inputs, out_dir: str | os.PathLike, *, mode: str = "two-phase",
                  detector=None, classifier=None, threshold: float | None = None,
                  review_below: float | None = None, batch_size: int = 1024,
                  report: bool = True, scheduler=None, progress: bool | None = None,
                  rows_per_range: int | None = None):
    """Inspect one or many wafer files, on a Dask cluster or in this process.

    Parameters
    ----------
    inputs : str, path or sequence of them
        Files and globs (:func:`expand_inputs`); all must share one schema. A list of
        :class:`InputFile` (from :func:`check_inputs`) is not checked again.
    out_dir : str or os.PathLike
        Output folder (``predictions.csv``, ``report.html``, ``run.json``), replaced as one
        unit when the run completes; rows in input order (files in the order given, globs
        sorted), identical to the single-process run of the same file.
    mode : {"two-phase", "single-phase", "detect", "anomaly"}
        ``"anomaly"``: ``detector`` is an anomaly run folder (``detect --unsupervised``).
    detector, classifier : str or path, optional
        Shipped model names or model folders (loaded by each worker; folders must be
        readable by the workers at the same path).
    threshold, review_below : float, optional
    batch_size : int, default 1024
    report : bool, default True
    scheduler : str, SchedulerSpec or distributed.Client, optional
        ``"local[:N]"`` or a scheduler address; None runs the ranges in this process.
    progress : bool, optional
        Progress bar on standard error (default: when it is a terminal).
    rows_per_range : int, optional
        Wafers per task (see :func:`plan_ranges`).

    Returns
    -------
    wafertk.inspect.InspectionResult
        ``extra`` holds ``workers``, ``ranges`` and per worker process its peak memory.
    """
    from wafertk.inspect.model import (
        ANOMALY_COLUMNS,
        CLASSIFY_COLUMNS,
        DETECT_COLUMNS,
        check_score_threshold,
        check_unit_interval,
    )
    from wafertk.inspect.output import OutputFolder
    from wafertk.inspect.runner import check_batch_size, check_model

    if mode not in ("two-phase", "single-phase", "detect", "anomaly"):
        raise WafertkError(f"unknown mode {mode!r}")
    if mode == "single-phase" and (detector is not None or threshold is not None):
        raise WafertkError("single-phase mode has no phase 1, so a detector or a threshold "
                           "does not apply")
    if mode == "anomaly":
        check_score_threshold(threshold, "anomaly threshold")
    else:
        check_unit_interval(threshold, "detector threshold", open_low=True, open_high=True)
    check_unit_interval(review_below, "review level", open_low=False, open_high=False)
    batch_size = check_batch_size(batch_size)
    spec_sched = parse_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    folder = OutputFolder(out_dir)
    folder.check()
    files = _checked(inputs)
    if mode == "anomaly":
        check_model(detector, "anomaly")
    elif mode != "single-phase":
        check_model(detector, "detector")
    if mode not in ("detect", "anomaly"):
        check_model(classifier, "classifier")
    if spec_sched is not None:
        import_distributed()
    columns = {"detect": DETECT_COLUMNS, "anomaly": ANOMALY_COLUMNS}.get(
        mode, CLASSIFY_COLUMNS) + (
        ["label"] if files[0].has_labels else [])
    spec = InspectSpec(mode=mode, detector=_model_spec(detector),
                       classifier=_model_spec(classifier), threshold=threshold,
                       review_below=review_below, batch_size=batch_size, report=report,
                       columns=tuple(columns))
    t0 = time.perf_counter()
    with _executor(spec_sched) as ex:
        ranges = plan_ranges(files, batch_size, n_workers=ex.n_workers, rows=rows_per_range)
        with folder as stage:
            counts = _gather_inspection(ex, spec, ranges, stage, files, progress, t0,
                                        spec_sched)
    secs = time.perf_counter() - t0
    from wafertk.inspect.runner import InspectionResult

    out = Path(out_dir)
    return InspectionResult(
        out_dir=out, n_wafers=counts["n"], n_defective=counts["defective"],
        n_review=counts["review"], seconds=secs, mode=mode,
        predictions=out / "predictions.csv", report=(out / "report.html") if report else None,
        extra=counts["extra"])


@contextlib.contextmanager
def _executor(spec_sched) -> Iterator:
    if spec_sched is None:
        try:
            yield InProcess()
        finally:
            _MODELS.clear()
        return
    with connect(spec_sched) as client:
        yield DaskExecutor(client)


def _bar(total: int, enabled: bool | None):
    """The single-process runner's progress bar (None when not shown)."""
    from wafertk.inspect.runner import _progress

    return _progress(total, enabled)


def _gather_inspection(ex, spec: InspectSpec, ranges, stage: Path, files, progress, t0,
                       spec_sched) -> dict:
    from wafertk.inspect.output import write_run_file

    builder = None
    n = n_def = n_rev = 0
    settings: dict = {}
    peaks: dict[int, int] = {}
    bar = _bar(sum(f.n for f in files), progress)
    with open(stage / "predictions.csv", "w", newline="", encoding="utf-8") as fh:
        fh.write(",".join(spec.columns) + "\n")
        for res in ex.map_ordered(inspect_range, [(spec, *r) for r in ranges],
                                   name="wafertk-inspect"):
            fh.write(res.csv)
            n += res.n
            n_def += res.n_defective
            n_rev += res.n_review
            settings = settings or res.settings
            peaks[res.worker_pid] = max(peaks.get(res.worker_pid, 0), res.peak_rss_kib)
            if res.builder is not None:
                builder = res.builder if builder is None else builder.merge(res.builder)
            if bar is not None:
                bar.update(res.n)
    if bar is not None:
        bar.close()
    seconds = round(time.perf_counter() - t0, 2)
    source = ", ".join(os.fspath(f.path) for f in files)
    if spec.report:
        if builder is None:
            from wafertk.report import BatchReportBuilder

            builder = BatchReportBuilder(mode=spec.mode)
        builder.meta.update(source=source, seconds=seconds,
                            two_phase=spec.mode == "two-phase", **settings)
        builder.write(stage / "report.html")
    has_det = spec.mode != "single-phase"
    extra = {"scheduler": None if spec_sched is None else str(spec_sched),
             "workers": ex.n_workers, "ranges": len(ranges),
             "peak_rss_mib_per_worker": sorted(round(v / 1024, 1) for v in peaks.values()),
             "peak_rss_mib_client": round(_peak_rss_kib() / 1024, 1)}
    counts = {"n": n, "defective": n_def if has_det else None,
              "review": n_rev if spec.mode not in ("detect", "anomaly") else None, "extra": extra}
    from wafertk import __version__

    inputs = [os.path.abspath(f.path) for f in files]
    write_run_file(stage, {"wafertk": __version__,
                           "input": inputs[0] if len(inputs) == 1 else inputs,
                           "batch_size": spec.batch_size, "report": spec.report, **settings,
                           "wafers": n, "defective": counts["defective"],
                           "review": counts["review"], "seconds": seconds,
                           **extra})
    return counts


# ------------------------------------------------------------------------------- features
_UNIONS: dict = {}


def _union(sets: tuple[str, ...], params_key: str):
    import json

    from wafertk.features.extract import make_feature_union

    key = (sets, params_key)
    if key not in _UNIONS:
        union = make_feature_union(list(sets), json.loads(params_key) or None).fit(None)
        _UNIONS[key] = (union, [str(c) for c in union.get_feature_names_out()])
    return _UNIONS[key]


def features_range(sets: tuple[str, ...], params_key: str, batch_size: int, path: str,
                   start: int, stop: int) -> list:
    """Feature tables (one per batch) of wafers ``start:stop`` of ``path`` (a worker task)."""
    from wafertk.data.h5 import WaferFile
    from wafertk.features.extract import range_frames

    union, names = _union(sets, params_key)
    with WaferFile(path, allow_empty=True, full_checks=False) as f:
        return range_frames(f, start, stop, union, names, batch_size)


def extract_files(inputs, out: str | os.PathLike, sets=None, *, batch_size: int = 2048,
                  params: dict | None = None, scheduler=None, progress: bool | None = None,
                  rows_per_range: int | None = None) -> Path:
    """Feature table of one or many wafer files, on a Dask cluster or in this process.

    The table is the one :func:`wafertk.features.extract_file` writes for the same file (the
    same bytes: one row group per batch), the files' rows one after the other.

    Parameters
    ----------
    inputs : str, path or sequence of them
        Files and globs (:func:`expand_inputs`).
    out : str or os.PathLike
        ``.csv`` for CSV, Parquet otherwise; written atomically.
    sets : str or sequence of str, optional
        Feature sets (default :data:`wafertk.features.DEFAULT_SETS`).
    batch_size : int, default 2048
    params : dict, optional
        Constructor keywords per set.
    scheduler : str, SchedulerSpec or distributed.Client, optional
        ``"local[:N]"`` or a scheduler address; None runs in this process.
    progress : bool, optional
    rows_per_range : int, optional

    Returns
    -------
    pathlib.Path
    """
    import json
    import sys

    from wafertk.features.extract import parse_sets, write_frames

    if batch_size < 1:
        raise WafertkError(f"batch size must be at least 1, got {batch_size}")
    names_sets = tuple(parse_sets(sets))
    params_key = json.dumps(params or {}, sort_keys=True)
    union, names = _union(names_sets, params_key)
    out = Path(out)
    if out.is_dir():
        raise WaferFileError(out, "is a folder (the output is a file)")
    spec_sched = parse_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    files = _checked(inputs, allow_empty=True)
    if spec_sched is not None:
        import_distributed()
    if progress is None:
        progress = sys.stderr.isatty()
    with _executor(spec_sched) as ex:
        ranges = plan_ranges(files, batch_size, n_workers=ex.n_workers, rows=rows_per_range)
        args = [(names_sets, params_key, batch_size, *r) for r in ranges]
        results = ex.map_ordered(features_range, args, name="wafertk-features")
        frames = (df for dfs in results for df in dfs)
        try:
            write_frames(out, frames, names, total=sum(f.n for f in files), progress=progress)
        except OSError as exc:
            raise WaferFileError(out, f"cannot write ({exc.strerror or exc})") from None
    return out


# ------------------------------------------------------------------------------- XGBoost
def _read_labels(files: Sequence[InputFile]) -> tuple:
    """Labels, lots and wafer ids of every file, concatenated (the split needs only these)."""
    import numpy as np

    from wafertk.data.h5 import WaferFile

    labels, lots, ids = [], [], []
    for f in files:
        with WaferFile(f.path, full_checks=False) as wf:
            lab = wf.read_column("label")
            lot = wf.read_column("lot")
            wid = wf.read_column("wafer_id")
        n = f.n
        labels.append(np.full(n, "", object) if lab is None else lab.astype(str).astype(object))
        lots.append(np.full(n, "", object) if lot is None else lot.astype(str).astype(object))
        ids.append(np.array([f"{f.path}:{i}" for i in range(n)], object) if wid is None
                   else np.char.add(f"{f.path}:", wid.astype(str)).astype(object))
    return (np.concatenate(labels).astype(str), np.concatenate(lots).astype(str),
            np.concatenate(ids).astype(str))


def xgb_features_range(sets: tuple[str, ...], params_key: str, batch_size: int, path: str,
                       start: int, stop: int, rows) -> object:
    """Features (float32) of the wafers ``rows`` (offsets from ``start``) of a range."""
    import numpy as np

    from wafertk.data.h5 import WaferFile

    union, names = _union(sets, params_key)
    out = np.empty((len(rows), len(names)), np.float32)
    if not len(rows):
        return out
    k = 0
    with WaferFile(path, full_checks=False) as f:
        for a in range(start, stop, batch_size):
            b = min(a + batch_size, stop)
            sel = rows[(rows >= a - start) & (rows < b - start)] - (a - start)
            if len(sel):
                ws = f.read(a, b).take(sel)
                out[k:k + len(sel)] = union.transform(ws).astype(np.float32, copy=False)
                k += len(sel)
    return out


def train_xgboost_files(inputs, out: str | os.PathLike, cfg, *, scheduler,
                        batch_size: int = 2048, rows_per_range: int | None = None) -> Path:
    """Train the XGBoost baseline with ``xgboost.dask`` on the labeled wafers of many files.

    The lot-disjoint stratified validation split is the one ``wafertk train xgboost`` makes
    (:func:`wafertk.data.splits.validation_split` over all labeled wafers, then restricted
    to the config's classes), computed on the client from the label and lot columns only.
    Features are extracted on the workers, range by range, and stay there as the chunks of
    the training and validation matrices; ``xgboost.dask.train`` trains on them (balanced
    sample weights, early stopping on the validation part). The run folder is the one
    :func:`wafertk.baseline.train.train_xgboost` writes.

    Parameters
    ----------
    inputs : str, path or sequence of them
        Labeled files and globs, one schema.
    out : str or os.PathLike
        Run folder (written atomically).
    cfg : wafertk.baseline.train.XGBoostTrainConfig
    scheduler : str, SchedulerSpec or distributed.Client
    batch_size : int, default 2048
    rows_per_range : int, optional

    Returns
    -------
    pathlib.Path
    """
    import numpy as np

    from wafertk.baseline.train import data_error, write_run
    from wafertk.data.splits import lot_stratified_split

    files = _checked(inputs)
    where = files[0].path if len(files) == 1 else None
    if not files[0].has_labels:
        raise data_error(files[0].path, "no labeled wafers to train on")
    labels, lots, ids = _read_labels(files)
    classes = cfg.class_list()
    target = cfg.target_labels(labels)  # the labels themselves unless classes: binary
    labeled = np.flatnonzero(labels != "")
    present = sorted(set(target[labeled][np.isin(target[labeled], classes)].tolist()))
    if len(present) < 2:
        raise data_error(where, f"needs labeled wafers of at least two of the classes "
                         f"{', '.join(classes)} to train, found {', '.join(present) or 'none'}")
    lab = labels[labeled]
    groups = lots[labeled] if not (lots[labeled] == "").all() else ids[labeled]
    tr, va = lot_stratified_split(lab, groups, (1 - cfg.val_fraction, cfg.val_fraction),
                                  random_state=cfg.resolved_split_seed)
    keep = np.isin(target[labeled], classes)
    tr, va = np.sort(labeled[tr[keep[tr]]]), np.sort(labeled[va[keep[va]]])
    if len(tr) == 0 or len(va) == 0:
        raise data_error(where, f"too few labeled lots for a lot-disjoint split "
                         f"({len(tr)} training, {len(va)} validation wafers)")
    lookup = {c: i for i, c in enumerate(classes)}
    codes = np.array([lookup.get(c, -1) for c in target.tolist()], np.int64)
    counts = np.bincount(codes[tr], minlength=len(classes)).astype(np.float64)
    cw = np.where(counts > 0, len(tr) / (np.count_nonzero(counts) * np.maximum(counts, 1)),
                  0.0) if cfg.class_weight == "balanced" else np.ones(len(classes))
    clf = cfg.make_classifier()
    sets = tuple(clf._sets())
    params_key = json_key(cfg.feature_params)
    names = _union(sets, params_key)[1]
    import_distributed()
    t0 = time.perf_counter()
    with connect(scheduler) as client:
        import dask.array as da
        from dask import delayed
        from xgboost import dask as dxgb

        ranges = plan_ranges(files, batch_size, n_workers=n_workers(client),
                             rows=rows_per_range)
        bases = np.cumsum([0] + [f.n for f in files])[:-1]
        base_of = {os.fspath(f.path): int(b) for f, b in zip(files, bases, strict=True)}

        def matrix(rows_all: np.ndarray):
            chunks, ys, ws = [], [], []
            for path, a, b in ranges:
                g0 = base_of[path]
                sel = rows_all[(rows_all >= g0 + a) & (rows_all < g0 + b)]
                if not len(sel):
                    continue
                task = delayed(xgb_features_range, pure=True)(
                    sets, params_key, batch_size, path, a, b, sel - g0 - a)
                chunks.append(da.from_delayed(task, shape=(len(sel), len(names)),
                                              dtype=np.float32))
                ys.append(codes[sel])
                ws.append(cw[codes[sel]])
            sizes = (tuple(len(y) for y in ys),)
            y = da.from_array(np.concatenate(ys), chunks=sizes)
            w = da.from_array(np.concatenate(ws), chunks=sizes)
            x = da.concatenate(chunks, axis=0)
            x, y, w = client.persist([x, y, w])
            return x, y, w

        X, y, w = matrix(tr)
        Xv, yv, wv = matrix(va)
        dtrain = dxgb.DaskDMatrix(client, X, y, weight=w, feature_names=names)
        dval = dxgb.DaskDMatrix(client, Xv, yv, weight=wv, feature_names=names)
        t_feat = time.perf_counter() - t0
        t0 = time.perf_counter()
        params = clf._xgb_params(len(classes))
        params.pop("nthread", None)  # each worker uses its own threads
        es = cfg.early_stopping_rounds
        res = dxgb.train(client, params, dtrain, num_boost_round=int(cfg.n_estimators),
                         evals=[(dtrain, "train"), (dval, "validation")],
                         early_stopping_rounds=es, verbose_eval=False)
        booster = res["booster"]
        t_fit = time.perf_counter() - t0
        proba = np.asarray(dxgb.predict(client, booster, dval).compute(), np.float64)
        workers = n_workers(client)
    clf.booster_ = booster
    clf.evals_result_ = res.get("history", {})
    clf.best_iteration_ = int(getattr(booster, "best_iteration", booster.num_boosted_rounds()
                                      - 1) if es else booster.num_boosted_rounds() - 1)
    clf.classes_ = np.asarray(classes, dtype=object)
    clf.feature_names_ = names
    clf.n_features_in_ = len(names)
    clf.manifest = None
    if proba.ndim == 1:
        proba = proba.reshape(len(va), len(classes))
    metrics = write_run(out, clf, cfg, proba, target[va], extra={
        "data": [f.path.name for f in files],
        "split": "validation_split: lot-disjoint, stratified over all labeled wafers",
        "seed": cfg.seed, "split_seed": cfg.resolved_split_seed, "n_train": int(len(tr)),
        "n_validation": int(len(va)),
        "train_lots": int(len(np.unique(lots[tr]))),
        "validation_lots": int(len(np.unique(lots[va]))), "best_iteration": clf.best_iteration_,
        "feature_seconds": round(t_feat, 2), "fit_seconds": round(t_fit, 2),
        "n_features": len(names), "trainer": "xgboost.dask", "workers": workers,
    })
    log.info("validation accuracy %.4f, macro-F1 %.4f", metrics["accuracy"],
             metrics["macro_f1"])
    return Path(out)


def json_key(params: dict | None) -> str:
    """A hashable, canonical form of feature-set parameters (the per-worker cache key)."""
    import json

    return json.dumps(params or {}, sort_keys=True)


__all__ = [
    "DaskExecutor",
    "InProcess",
    "InputFile",
    "InspectSpec",
    "RangeResult",
    "SchedulerSpec",
    "check_inputs",
    "connect",
    "expand_inputs",
    "extract_files",
    "features_range",
    "import_distributed",
    "inspect_files",
    "inspect_range",
    "n_workers",
    "parse_scheduler",
    "plan_ranges",
    "train_xgboost_files",
    "worker_model",
]
