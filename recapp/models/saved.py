"""Reading a saved model back: :func:`load` checks every part of the folder :meth:`Recommender.save` wrote."""
from __future__ import annotations

import json
from pathlib import Path

from recapp.interactions import Interactions
from recapp.models.base import REGISTRY, UNLISTED, Recommender


def load(path, *, unlisted: bool = False) -> Recommender:
    """Load a model written by :meth:`Recommender.save`.

    ``unlisted=True`` also reads the classes declared ``listed=False`` (:data:`UNLISTED`), as
    :func:`recapp.spark.load` does for a saved ALSWR. A torch model saved with a CUDA ``device`` this machine
    lacks is loaded with ``device="auto"`` (a warning says so). A file that is malformed, edited out of shape or from
    another model raises ``ValueError`` naming the file and what does not match.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    cfg_path, st_path = path / "config.json", path / "state.safetensors"
    if not cfg_path.exists() or not st_path.exists():
        raise FileNotFoundError(f"{path} is not a saved recapp model: expected config.json and state.safetensors")
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{cfg_path}: not valid JSON ({e})") from e
    # A bad file is a ValueError whatever is wrong in it (TRY004 would have a TypeError here).
    if not isinstance(config, dict):
        raise ValueError(f"{cfg_path}: must hold a JSON object, not a {type(config).__name__}")
    missing = [k for k in ("class", "params", "n_items", "n_users_fit", "user_ids", "item_ids") if k not in config]
    if missing:
        raise ValueError(f"{cfg_path}: missing key(s) {missing}")
    name = config["class"] if isinstance(config["class"], str) else None
    cls = REGISTRY.get(name) or (UNLISTED.get(name) if unlisted else None)
    if cls is None:
        raise ValueError(f"{cfg_path}: unknown model class {config['class']!r}; known: {sorted(REGISTRY)}")
    if not isinstance(config["params"], dict):
        raise ValueError(f"{cfg_path}: params must be an object, not {config['params']!r:.80}")
    try:
        model = cls(**cls._params_for_load(config["params"]))
        model._validate_params()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cfg_path}: params do not fit class {name}: {e}") from e
    try:
        arrays = load_file(str(st_path))
    except (SafetensorError, ValueError, OSError) as e:
        raise ValueError(f"{st_path}: not a readable safetensors file ({e})") from e
    try:
        model.interactions_ = Interactions.from_saved(arrays, config)
    except ValueError as e:
        raise ValueError(f"{path}: config.json and state.safetensors do not hold one model's events: {e}") from e
    inter = model.interactions_
    sizes = {}
    for key, ids, n in (("n_items", "item_ids", inter.n_items), ("n_users_fit", "user_ids", inter.n_users)):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n:
            raise ValueError(f"{cfg_path}: {key}={value!r} must be an integer from 1 to the {n} ids of {ids}")
        sizes[key] = value
    pop = arrays.get("fit.item_popularity")
    if pop is None or pop.ndim != 1 or not sizes["n_items"] <= len(pop) <= inter.n_items:
        raise ValueError(f"{st_path}: fit.item_popularity has shape {None if pop is None else pop.shape} but the config's "
                         f"{sizes['n_items']} items (of {inter.n_items} item ids) need from {sizes['n_items']} to {inter.n_items}")
    _check_array_shapes(arrays, config.get("array_shapes", {}), sizes, cfg_path, st_path)
    model.n_items_, model.n_users_fit_, model.item_popularity_ = sizes["n_items"], sizes["n_users_fit"], pop
    try:
        model._set_state({k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")})
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        why = f"missing array {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{st_path} does not match class {name}: {why}") from e
    extra = config.get("extra", {})
    # Every model saves a JSON object here; anything else would fail inside the class with a message naming nothing.
    if not isinstance(extra, dict):
        raise ValueError(f"{cfg_path}: extra must be an object, not {extra!r:.80}")
    try:
        model._set_extra_config(extra)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        why = f"missing {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{path}: config.json's extra and state.safetensors do not match class {name}: {why}") from e
    return model


def _check_array_shapes(arrays: dict, shapes, sizes: dict, cfg_path: Path, st_path: Path) -> None:
    # Files written before array_shapes was saved have none: they are checked by the rest of load only.
    if not isinstance(shapes, dict) or not all(isinstance(v, list) for v in shapes.values()):
        raise ValueError(f"{cfg_path}: array_shapes must map array names to lists of sizes, got {shapes!r:.80}")
    for key, recorded in shapes.items():
        if not all(d in sizes if isinstance(d, str) else isinstance(d, int) and not isinstance(d, bool) for d in recorded):
            raise ValueError(f"{cfg_path}: array_shapes[{key!r}]={recorded!r} must hold integers, 'n_items' or 'n_users_fit'")
        want = tuple(sizes.get(d, d) for d in recorded)
        got = arrays[key].shape if key in arrays else None
        if got != want:
            named = [f"{sizes[d]} items" if d == "n_items" else f"{sizes[d]} fitted users" for d in dict.fromkeys(recorded) if d in sizes]
            need = f"the config's {' and '.join(named)} need" if named else "config.json records"
            raise ValueError(f"{st_path}: {key} {'is missing' if got is None else f'has shape {got}'} but {need} {want}")


__all__ = ["load"]
