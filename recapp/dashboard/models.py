"""Which models the dashboard offers, and each one trained once: a cache keyed by data and parameters.

Every model in :data:`recapp.models.REGISTRY` is offered (every model serves
live), plus every model saved under the models folder that was trained on the
selected data (matched by :func:`recapp.interactions.events_fingerprint`,
which ``Recommender.save`` records). Trained models are written to
``<models folder>/dashboard/<data fingerprint>/<name>-<parameter digest>``, so
the second open of the same data is instant. Training runs on a background
thread (:class:`TrainingJob`) so the page stays responsive.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Callable

from recapp.dashboard.jobs import AB, LIVE, BackgroundJob  # noqa: F401 - AB: ab_tab and app import it from here
from recapp.models import EASE, REGISTRY, ItemKNN, Recommender, load
from recapp.models.progress import training_progress
from recapp.realtime.threads import background_fit

log = logging.getLogger(__name__)

#: Environment variable naming the models folder (default ``$RECAPP_DATA/models``).
MODELS_ENV = "RECAPP_MODELS"
DEFAULT_MODEL = "EASE"
SAVED_PREFIX = "saved:"
#: The dashboard's own cache lives here inside the models folder; the rest is the analyst's.
CACHE_FOLDER = "dashboard"
#: Where the page's defaults differ from a model's own: a smaller EASE penalty on small logs
#: (the tuned 500 is for MovieLens-sized data), a wider ItemKNN neighbourhood.
PAGE_DEFAULTS: dict[str, Callable] = {
    "EASE": lambda scenario: EASE(l2=500.0 if len(scenario.train) >= 50_000 else 50.0),
    "ItemKNN": lambda scenario: ItemKNN(neighbours=100),
}


def models_dir(root=None) -> Path:
    """The models folder: ``root``, else ``$RECAPP_MODELS``, else ``$RECAPP_DATA/models``."""
    if root is not None:
        return Path(root)
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    from recapp.data import data_dir

    return data_dir() / "models"


def registry_factories() -> dict[str, Callable]:
    """Model name -> factory(scenario) for every registered model, the default first."""
    names = sorted(REGISTRY, key=lambda n: (n != DEFAULT_MODEL, n.lower()))
    return {n: PAGE_DEFAULTS.get(n, lambda scenario, cls=REGISTRY[n]: cls()) for n in names}


def _params_digest(model) -> str:
    return hashlib.sha256(json.dumps(model.get_params(), sort_keys=True, default=repr).encode()).hexdigest()[:10]


class ModelCatalogue:
    """The models the page can serve for a scenario, each loaded from the cache or trained once.

    ``factories`` maps names to ``factory(scenario) -> unfitted model`` (tests pass
    small ones); ``root`` is the models folder (see :func:`models_dir`).
    """

    def __init__(self, factories: dict | None = None, root=None):
        self.factories = registry_factories() if factories is None else dict(factories)
        self.root = models_dir(root)
        self._memory: dict[tuple, object] = {}
        self._lock = threading.Lock()

    # ---- what can be picked ----------------------------------------------------------------
    def saved_models(self, scenario) -> dict[str, Path]:
        """Saved models under the models folder trained on ``scenario``'s training data: key -> folder."""
        found = {}
        if not self.root.is_dir():
            return found
        for cfg in sorted(self.root.glob("**/config.json")):
            rel = cfg.parent.relative_to(self.root)
            if rel.parts[:1] == (CACHE_FOLDER,) or len(rel.parts) > 3:
                continue
            try:
                config = json.loads(cfg.read_text())
            except (OSError, ValueError) as exc:
                log.info("skipping unreadable saved model %s: %s", cfg, exc)
                continue
            if config.get("data_fingerprint") == scenario.data_fingerprint:
                found[f"{SAVED_PREFIX}{rel.as_posix()}"] = cfg.parent
        return found

    def choices(self, scenario) -> list[tuple[str, str]]:
        """(label, key) per model the Model selector offers for ``scenario``."""
        out = [(name, name) for name in self.factories]
        out += [(f"saved · {key[len(SAVED_PREFIX):]}", key) for key in self.saved_models(scenario)]
        return out

    def describe(self, key: str) -> str:
        """A short label for ``key`` (the name, or the saved folder)."""
        return key[len(SAVED_PREFIX):] if key.startswith(SAVED_PREFIX) else key

    # ---- getting a fitted model --------------------------------------------------------------
    def _unfitted(self, key: str, scenario):
        # A factory's product is checked here: else a wrong return shows as "'NoneType' has no attribute ...".
        model = self.factories[key](scenario)
        if not isinstance(model, Recommender):
            raise TypeError(f"the factory of model {key!r} returned {type(model).__name__} "
                            f"({str(model)[:60]!r}), not a recapp model: it must return an unfitted model "
                            "such as Popularity()")
        return model

    def _cache_path(self, key: str, scenario) -> Path:
        model = self._unfitted(key, scenario)
        return self.root / CACHE_FOLDER / scenario.fingerprint / f"{key}-{_params_digest(model)}"

    def _check(self, key: str, scenario) -> None:
        if key.startswith(SAVED_PREFIX):
            if key not in self.saved_models(scenario):
                raise KeyError(f"no saved model {self.describe(key)!r} trained on {scenario.label} under {self.root}")
        elif key not in self.factories:
            raise KeyError(f"unknown model {key!r}; available: {list(self.factories)}")

    def ready(self, key: str, scenario):
        """The fitted model if it is in memory or can be read from disk now, else None (it needs training)."""
        self._check(key, scenario)
        mem = (scenario.fingerprint, key)
        if mem in self._memory:
            return self._memory[mem]
        if key.startswith(SAVED_PREFIX):
            path = self.saved_models(scenario)[key]
        else:
            try:
                path = self._cache_path(key, scenario)
            except Exception:  # noqa: BLE001 - a factory that fails fails again in training, where the page reports it
                return None
        if not (path / "config.json").exists():
            return None
        try:
            model = load(path)
        except Exception as exc:  # noqa: BLE001 - a corrupt cache entry is retrained, not fatal
            if key.startswith(SAVED_PREFIX):
                raise ValueError(f"saved model {path} could not be read: {exc}") from exc
            log.warning("cached model %s is unreadable (%s); it will be retrained", path, exc)
            shutil.rmtree(path, ignore_errors=True)
            return None
        with self._lock:
            self._memory[mem] = model
        return model

    def get(self, key: str, scenario):
        """The fitted model ``key`` for ``scenario``: from memory or disk, else trained now and cached.

        Refused (TypeError): a factory that returns something other than a model (named with its type).
        """
        model = self.ready(key, scenario)
        if model is not None:
            return model
        model = self._unfitted(key, scenario).fit_with_items(scenario.train, scenario.items)
        path = self._cache_path(key, scenario)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            # Written beside the target and renamed, so a concurrent start never reads half a model.
            shutil.rmtree(tmp, ignore_errors=True)
            model.save(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            log.info("model cache %s not written: %s", path, exc)
            shutil.rmtree(tmp, ignore_errors=True)
        with self._lock:
            self._memory[(scenario.fingerprint, key)] = model
        return model


class TrainingJob(BackgroundJob):
    """One model fetched or trained on a background thread; the page polls it from its clock.

    ``progress`` is the share of epochs done for models that train in epochs
    (None otherwise); ``model`` is set when it succeeds, ``error`` when it fails.
    ``purpose`` says who it is for: LIVE (the Model selector's choice) or AB (the A/B test).
    """

    thread_prefix = "recapp-train"

    def __init__(self, catalogue: ModelCatalogue, key: str, scenario, purpose: str = LIVE):
        self.catalogue, self.scenario = catalogue, scenario
        super().__init__(key, purpose)

    def _work(self):
        with training_progress(self._report), background_fit():
            return self.catalogue.get(self.key, self.scenario)

    def _report(self, done: int, total: int) -> None:
        self.progress = done / total if total else None

    @property
    def model(self):
        """The fitted model once the job succeeded, else None."""
        return self.result
