"""The page's background work, one job at a time: a model's training, or the read of a large log.

Slow work runs on a thread so the kernel's main thread (the page) stays
responsive; the page polls the job from its clock and applies its result.
Threads in torch or BLAS cannot be stopped safely, so a job that hangs is never
killed: the analyst can stop waiting for it (:meth:`BackgroundJob.abandon`),
after which it runs on unseen and its late result is never used.
:class:`JobControl` is the page's side: start, poll, wait for and abandon its one job.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from recapp.dashboard import views
from recapp.dashboard.views import duration

log = logging.getLogger(__name__)

#: Who a job is for: the Live tab (its key is the Model selector's), the A/B test, or the Data selector.
LIVE, AB, DATA = "live", "ab", "data"


class BackgroundJob:
    """Work started on a thread at once; ``result`` is set when it succeeds, ``error`` when it fails.

    ``key`` names what it works on (a model key, a Data label) and ``purpose``
    who waits for it (LIVE, AB or DATA). ``note`` is text the page adds to its
    messages about the job. The thread is not a daemon: a process that exits
    mid-job waits for it rather than stopping inside torch.
    """

    thread_prefix = "recapp-job"

    def __init__(self, key: str, purpose: str):
        self.key, self.purpose = key, purpose
        self.result = None
        self.error: BaseException | None = None
        self.progress: float | None = None
        self.note = ""
        self.abandoned = False
        self.started = time.perf_counter()
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"{self.thread_prefix}-{key}")
        self._thread.start()

    def _work(self):
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self.result = self._work()
        except Exception as exc:  # noqa: BLE001 - the page shows it; the kernel must live on
            log.exception("background job %s (%s) failed", self.key, self.purpose)
            self.error = exc
        finally:
            self.seconds = time.perf_counter() - self.started
            if self.abandoned:
                log.info("abandoned job %s (%s) ended after %.1f s; its result is not used",
                         self.key, self.purpose, self.seconds)

    def abandon(self) -> None:
        """Mark the job as no longer awaited: it runs on (it cannot be stopped safely), its result unused."""
        self.abandoned = True

    @property
    def finished(self) -> bool:
        """Whether the thread is done (successfully or not)."""
        return not self._thread.is_alive()

    @property
    def elapsed(self) -> float:
        """Seconds since the job started (its duration once finished)."""
        return self.seconds if self.seconds is not None else time.perf_counter() - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is finished (or ``timeout`` seconds pass); returns whether it finished."""
        self._thread.join(timeout)
        return self.finished


class DataJob(BackgroundJob):
    """The read of one Data selector entry: ``read()`` returns what the page applies when it ends.

    ``share``, ``time_format`` and ``model_key`` are the request the read was
    started with (the Replay share, the Date format field, the model to serve after).
    """

    thread_prefix = "recapp-read"

    def __init__(self, label: str, read: Callable, share: float, time_format: str, model_key: str | None = None):
        self._read = read
        self.share, self.time_format, self.model_key = share, time_format, model_key
        super().__init__(label, DATA)

    def _work(self):
        return self._read()


def reading(label: str, elapsed: float) -> str:
    """What the page says while a log is read in the background."""
    return (f"Reading {label}… {duration(elapsed)}. The page stays usable; "
            "Stop waiting keeps the data in use.")


class JobControl:
    """The dashboard's one background job (mixed into :class:`~recapp.dashboard.app.Dashboard`).

    One job runs at a time for the whole page: the Live tab's training, the A/B
    test's, or the read of a large log. The poll clock applies it when it ends;
    Stop waiting (:meth:`abandon_job`) forgets it.
    """

    def _training_note(self) -> str:
        # What the running job does, for how long, and the way out, for a refusal message.
        job = self.job
        so_far = duration(job.elapsed)
        if job.purpose == DATA:
            return f"{job.key} is still being read ({so_far} so far; Stop waiting keeps the data in use)"
        what = "for the A/B test" if job.purpose == AB else "for the Live tab"
        return f"{self.catalogue.describe(job.key)} is still training {what} ({so_far} so far; Stop waiting abandons it)"

    def _job_message(self, job: BackgroundJob) -> str:
        # What the page says while ``job`` runs.
        if job.purpose == DATA:
            return reading(job.key, job.elapsed) + job.note
        text = views.training(self.catalogue.describe(job.key), job.elapsed, job.progress, self._where(job.purpose, job.scenario))
        return text + job.note

    def _start_job(self, job: BackgroundJob, then: Callable | None = None) -> None:
        self.job, self._after_training = job, then
        self.progress.value, self.progress.layout.visibility = 0.0, "visible"
        self.stop_wait.layout.display = None
        self.show_message(self._job_message(job))
        self.poll.play.playing = True

    def _end_job(self) -> None:
        self.job, self._after_training = None, None
        self.poll.stop()
        self.progress.layout.visibility = "hidden"
        self.stop_wait.layout.display = "none"

    def abandon_job(self) -> None:
        """Stop waiting for the running job (Stop waiting): it runs on unseen, and its result is never used.

        Threads in torch or BLAS cannot be stopped safely, so the job is not killed.
        The selectors go back to the data and model in use, and any may be picked again.
        """
        job = self.job
        if job is None:
            return
        job.abandon()
        self.abandoned = [j for j in self.abandoned if not j.finished] + [job]
        self._end_job()
        if job.purpose == DATA:
            self._restore_data_controls()
            what, after = f"reading {job.key}", "the data in use stays"
        else:
            what = f"{self.catalogue.describe(job.key)}" + (" for the A/B test" if job.purpose == AB else "")
            after = "press Play on the A/B test to ask again" if job.purpose == AB else "pick a model or data"
            self._quietly(self.model_dd, value=self.model_key)
        running = len(self.abandoned)
        self.show_message(f"Stopped waiting for {what} after {duration(job.elapsed)}: it runs on in the "
                          f"background (it cannot be stopped safely; {running} such job{'s' * (running != 1)} "
                          f"now) and its result will not be used; {after}.", "warn")

    def request_model(self, key: str, scenario, then: Callable, purpose: str = LIVE) -> None:
        """Call ``then(key, model)`` with the fitted model: now if it is cached, else when training ends.

        ``purpose`` is LIVE (the Live tab's model) or AB (the A/B test's). One model
        trains at a time: asked again for the model already training for the same
        purpose, only ``then`` is replaced (never a second training); asked for
        another while one trains, it says so.
        """
        if self.job is not None:
            job = self.job
            if job.purpose == purpose and job.key == key and job.scenario.fingerprint == scenario.fingerprint:
                self._after_training = then
                self.show_message(self._job_message(job))
            else:
                after = "press Play on the A/B test again" if purpose == AB else "pick the model again"
                self.show_message(f"{self._training_note()}; {after} when it is done.", "warn")
            return
        model = self.catalogue.ready(key, scenario)
        if model is not None:
            then(key, model)
            return
        from recapp.dashboard.models import TrainingJob   # here: models imports this module

        self._start_job(TrainingJob(self.catalogue, key, scenario, purpose), then)

    @staticmethod
    def _where(purpose: str, scenario) -> str:
        # What the training message says the model trains on, or for.
        return f"for the A/B test on the {scenario.label}" if purpose == AB else "on this data"

    def _poll_training(self) -> None:
        job = self.job
        if job is None:
            self.poll.stop()
            return
        if not job.finished:
            # Without epochs to count, the bar fills slowly towards 90% so it still shows life.
            self.progress.value = job.progress if job.progress is not None else min(0.9, job.elapsed / (job.elapsed + 20.0))
            self.show_message(self._job_message(job))
            return
        purpose, then = job.purpose, self._after_training
        self._end_job()
        if purpose == DATA:
            if job.error is not None:
                self._restore_data_controls()
                self._show_failure(job.error, "select_data")
                return
            self._use_data(job.key, job.share, job.time_format, *job.result, job.model_key)
            return
        name = self.catalogue.describe(job.key)
        if job.error is not None:
            detail = str(job.error) or type(job.error).__name__
            if purpose == AB:
                self.show_message(f"Could not train {name} for the A/B test: {detail}. Pick another policy.", "problem")
                return
            self.show_message(f"Could not train {name}: {detail}. "
                              + (f"Still showing {self.catalogue.describe(self.model_key)}." if self.model_key else
                                 "Pick another model."), "problem")
            self._quietly(self.model_dd, value=self.model_key)
            return
        if purpose == AB:
            self.show_message(f"{name} trained for the A/B test in {job.elapsed:.1f} s and cached.")
        else:
            self.show_message(f"{name} trained in {job.elapsed:.1f} s and cached.{job.note}", "warn" if job.note else "info")
        then(job.key, job.model)

    def wait_for_training(self, timeout: float | None = None) -> None:
        """Block until the background job ends and apply it (what the poll clock does in the browser).

        After a background read, it also waits for the training of the model served on the new data.
        """
        while self.job is not None:
            job = self.job
            job.wait(timeout)
            self._poll_training()
            if job.purpose != DATA or not job.finished:
                return
