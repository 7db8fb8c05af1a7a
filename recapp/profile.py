"""Run profiles: small settings for continuous integration, full settings otherwise.

The notebooks' ``parameters`` cells read every size through :func:`settings`,
so one environment variable switches a whole notebook between a run that
finishes in a couple of minutes on two cores (``RECAPP_PROFILE=ci``) and the
full analysis (unset, or any other value)::

    from recapp.profile import settings
    EPOCHS = settings(ci=2, full=50)
"""
from __future__ import annotations

import os

#: The environment variable that selects the profile.
PROFILE_ENV = "RECAPP_PROFILE"
#: The profiles there are: ``"ci"`` (small and fast) and ``"full"``.
PROFILES = ("ci", "full")


def profile() -> str:
    """The active profile: ``"ci"`` when ``$RECAPP_PROFILE`` is ``ci`` (any case), else ``"full"``."""
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    return "ci" if value == "ci" else "full"


def is_ci() -> bool:
    """Whether the small continuous-integration profile is active."""
    return profile() == "ci"


def settings(*, ci, full):
    """``ci`` under the ci profile, ``full`` otherwise; either may be any object (a number, a dict...)."""
    return ci if is_ci() else full


__all__ = ["PROFILE_ENV", "PROFILES", "profile", "is_ci", "settings"]
