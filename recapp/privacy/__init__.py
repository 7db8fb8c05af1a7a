"""Privacy: keyed pseudonyms for shopper ids (:mod:`.pseudonyms`) and differentially private item counts (:mod:`.dp`).

Each module's docstring states its guarantees: what a pseudonym hides and how
likely two ids are to share one; which mechanism, sensitivity and (epsilon,
delta) a private count release has.
"""
from recapp.privacy.dp import (MECHANISMS, add_noise, check_dp_params, clipped_item_counts, noise_scale, noise_variance,
                               private_item_counts, sensitivity)
from recapp.privacy.pseudonyms import (KEY_ENV, MAX_EXACT_FLOAT_INT, MIN_KEY_BYTES, MissingKeyError, Pseudonymizer,
                                       canonical_id, new_key_file, pseudonymize_frame)

__all__ = [
    "KEY_ENV", "MIN_KEY_BYTES", "MECHANISMS", "MAX_EXACT_FLOAT_INT", "MissingKeyError", "Pseudonymizer", "canonical_id", "new_key_file",
    "pseudonymize_frame", "check_dp_params", "clipped_item_counts", "sensitivity", "noise_scale", "noise_variance",
    "add_noise", "private_item_counts",
]
