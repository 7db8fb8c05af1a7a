"""A local SparkSession with sane defaults, and the check for the Java it needs.

Spark 4 runs on Java 17 or newer. :func:`spark_session` starts (or returns the
running) session with the settings a laptop or a CI runner wants: the UI off,
a handful of shuffle partitions, UTC as the session time zone, Arrow for
pandas conversions, a temporary ``spark.local.dir``, and the Python workers
started with the running interpreter (``sys.executable``) so that they import
the same recapp, numpy and pandas as the driver. On a cluster, pass
``master="yarn"`` (or a ``k8s://`` URL) or launch with ``spark-submit``; every
other function of :mod:`recapp.spark` takes the session's DataFrames as they
are and runs unchanged.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings

from recapp.models.base import check_param

#: The line printed (and the reason given to pytest) where Java cannot be found.
JAVA_MISSING = ("Java was not found: Spark 4 needs Java 17 or newer (on Debian: apt-get install openjdk-17-jre-headless; "
                "`make test` installs it when it is missing)")
PYSPARK_MISSING = "pyspark is not installed: pip install 'recapp[spark]' (pyspark 4.3)"
MIN_JAVA = 17
_LOG_LEVELS = ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF", "TRACE")
# Spark's byte-size units (JavaUtils.byteStringAs); it reads a number without one in the setting's own
# default unit (MiB for spark.driver.memory), so 2 would start a JVM with a 2 MiB heap.
_SIZE = re.compile(r"(\d+)(b|kb?|mb?|gb?|tb?|pb?)?", re.IGNORECASE)
# The driver's heap is the JVM's -Xmx in local mode, which knows only these units.
_HEAP = re.compile(r"\d+[kmgt]", re.IGNORECASE)
_SIZE_POWERS = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}

# pyspark 4.3 warns on every pandas conversion that pandas 3 is "not fully supported"; recapp
# moves data with Arrow-friendly types and its tests check each conversion, so it is silenced here.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


def java_version() -> int | None:
    """The major version of the ``java`` on ``$JAVA_HOME`` or ``$PATH``, or None when there is none."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home and os.path.exists(os.path.join(home, "bin", "java")) else shutil.which("java")
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if m is None:
        return None
    major = int(m.group(1))
    # Java 8 and older report "1.8.0_...".
    return int(m.group(2) or 0) if major == 1 else major


def java_available() -> bool:
    """Whether a Java that Spark 4 can run on (17 or newer) is installed."""
    v = java_version()
    return v is not None and v >= MIN_JAVA


def pyspark_available() -> bool:
    """Whether pyspark can be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def spark_unavailable_reason() -> str | None:
    """Why Spark cannot start here (no pyspark, no Java 17+), or None when it can."""
    if not pyspark_available():
        return PYSPARK_MISSING
    v = java_version()
    if v is None:
        return JAVA_MISSING
    if v < MIN_JAVA:
        return f"Java {v} was found but Spark 4 needs Java {MIN_JAVA} or newer (on Debian: apt-get install openjdk-17-jre-headless)"
    return None


def notebook_guard() -> bool:
    """For a notebook's first cell: True when Spark can run here; else say why and skip every later cell.

    Where pyspark or Java 17 is missing it prints the reason and registers an
    IPython input transformer that turns each following cell into ``pass``, so
    the notebook runs to the end (under nbval too) instead of failing cell after
    cell. Outside IPython it only returns False.
    """
    reason = spark_unavailable_reason()
    if reason is None:
        return True
    print(f"Skipping the rest of this notebook: {reason}")
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is not None:
        shell.input_transformers_post.append(_skip_cell)
    return False


def _skip_cell(lines: list[str]) -> list[str]:
    return ["pass\n"]


def spark_session(app_name: str = "recapp", *, master: str | None = "local[2]", shuffle_partitions: int = 4,
                  driver_memory: str = "2g", local_dir: str | None = None, ui: bool = False, log_level: str = "ERROR",
                  conf: dict | None = None):
    """Start (or return the running) SparkSession with local defaults; returns the session.

    ``master`` defaults to two local cores; None leaves it to ``spark-submit``
    (``--master yarn``, ``--master k8s://...``). ``shuffle_partitions`` sets
    ``spark.sql.shuffle.partitions`` (Spark's 200 suits a cluster, not a laptop);
    ``local_dir`` is ``spark.local.dir`` (default: a new temporary folder, removed
    when the Python process exits), whose ``checkpoints`` subfolder becomes the
    checkpoint folder iterative jobs such as ALS cut their lineage with;
    ``conf`` adds or overrides any Spark setting. The Python workers run
    ``sys.executable``. A session that is already running is returned as it is,
    with none of this call's settings applied, static or runtime (its own time
    zone, shuffle partitions and log level stay), nor the environment touched; a
    UserWarning names each setting asked for (other than its default) that the
    running session does not have (``driver_memory`` and the other static ones can
    only change with a new session); memory sizes count as the same when their
    bytes are (``"1g"`` and ``"1024m"``). Refused (ValueError):
    ``shuffle_partitions`` below 1, ``ui`` other than True/False, a ``conf``
    that is not a dict, an unknown ``log_level``, a ``driver_memory`` that is not
    text with a unit (``"2g"``, ``"512m"``: Spark reads a bare ``2`` as 2 MiB).
    """
    check_param("shuffle_partitions", shuffle_partitions, low=1, integer=True)
    # str(bool("false")) would switch the UI on; a conf that is not a mapping fails later on .items().
    check_param("ui", ui, choices=(True, False))
    if not isinstance(driver_memory, str) or _HEAP.fullmatch(driver_memory) is None:
        raise ValueError(f"driver_memory={driver_memory!r} is not a memory size with a unit: give text such as "
                         "'2g' or '512m' (Spark reads a number without a unit as MiB, so 2 would be a 2 MiB heap)")
    if conf is not None and not isinstance(conf, dict):
        raise ValueError(f"conf must be a dict of Spark settings, got {type(conf).__name__}: {conf!r:.80}")
    if not isinstance(log_level, str) or log_level.upper() not in _LOG_LEVELS:
        raise ValueError(f"log_level={log_level!r} is not accepted; accepted values: {list(_LOG_LEVELS)}")
    # The arguments are checked first, so a wrong one is named on a machine without Java too.
    reason = spark_unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        # getOrCreate would write this call's runtime settings (time zone, shuffle partitions, ...) over the
        # running session's own, changing how the caller's later jobs read times and partition data.
        spark = SparkSession.builder.getOrCreate()
        _warn_unapplied(spark, {"app_name": (app_name, "recapp", spark.sparkContext.appName),
                                "master": (master, "local[2]", spark.sparkContext.master),
                                "shuffle_partitions": (str(shuffle_partitions), "4",
                                                       spark.conf.get("spark.sql.shuffle.partitions", None)),
                                "driver_memory": (driver_memory, "2g",
                                                  spark.sparkContext.getConf().get("spark.driver.memory", None)),
                                "local_dir": (local_dir, None, spark.sparkContext.getConf().get("spark.local.dir", None)),
                                "ui": (str(bool(ui)).lower(), "false",
                                       spark.sparkContext.getConf().get("spark.ui.enabled", "true")),
                                **{f"conf[{k!r}]": (str(v), None, spark.conf.get(k, None))
                                   for k, v in (conf or {}).items()}})
        return spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    # The Python workers inherit the environment: the same warning silenced there.
    quiet = "ignore:PySpark does not yet fully support pandas:FutureWarning"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
    if master is not None and master.startswith("local"):
        # One machine: bind to loopback instead of guessing an interface (and warning about it).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    settings = {
        "spark.ui.enabled": str(bool(ui)).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.driver.memory": driver_memory,
        "spark.local.dir": local_dir or _scratch_folder(),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.adaptive.enabled": "true",
        "spark.driver.extraJavaOptions": "-Dio.netty.tryReflectionSetAccessible=true",
    }
    settings.update({k: str(v) for k, v in (conf or {}).items()})
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    if spark.sparkContext.getCheckpointDir() is None:
        # Iterative jobs (ALS's checkpointInterval) cut their lineage only where there is a checkpoint folder;
        # without one, a 15-iteration ALS's lineage overflowed the JVM's stack when a task over its factors was
        # serialized (StackOverflowError, now and then on a loaded machine).
        spark.sparkContext.setCheckpointDir(os.path.join(settings["spark.local.dir"].split(",")[0], "checkpoints"))
    return spark


def _scratch_folder() -> str:
    """A new temporary folder for ``spark.local.dir``, removed when the Python process exits.

    Spark leaves its block-manager folders behind, so every session would
    otherwise leave one more folder in the temporary directory. The removal is
    registered before the session starts: exit handlers run last-in first-out,
    so the Java gateway (registered while the session starts) is stopped first.
    """
    folder = tempfile.mkdtemp(prefix="recapp-spark-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _warn_unapplied(spark, asked: dict) -> None:
    """Warn, naming each setting, where this call asked for a value the running session does not have.

    ``asked`` maps a setting's name to (the value asked, the signature's default, the running value);
    a default is not a request, so a plain ``spark_session()`` that joins a session stays quiet.
    """
    differ = [f"{name}={value!r} (running: {running!r})" for name, (value, default, running) in asked.items()
              if value is not None and value != default and not _same_setting(value, running, name)]
    if differ:
        warnings.warn(f"spark_session: a SparkSession is already running, so these settings of this call were not "
                      f"applied: {', '.join(differ)}; stop it (spark.stop()) first to start one with them",
                      UserWarning, stacklevel=3)


def _size_bytes(text, unit_required: bool = False) -> int | None:
    """Bytes of a Spark size such as ``"2g"`` (MiB where the unit is left out), or None for anything else."""
    m = _SIZE.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None or (unit_required and m.group(2) is None):
        return None
    return int(m.group(1)) * 1024 ** _SIZE_POWERS[(m.group(2) or "m")[0].lower()]


def _same_setting(value, other, name: str) -> bool:
    """Whether two values of one setting are the same: as text, or as sizes of the same bytes (both with units,
    except the running ``driver_memory``, which Spark reads in MiB without one)."""
    if value == other:
        return True
    a = _size_bytes(value, unit_required=True)
    b = _size_bytes(other, unit_required=name != "driver_memory")
    return a is not None and a == b


__all__ = ["JAVA_MISSING", "PYSPARK_MISSING", "java_version", "java_available", "pyspark_available",
           "spark_unavailable_reason", "spark_session", "notebook_guard"]
