"""The look every recapp figure shares: template, event colours, margins."""
from __future__ import annotations

import plotly.graph_objects as go

TEMPLATE = "plotly_white"
#: One colour per event type, used by every figure that splits by event.
EVENT_COLORS = {"view": "#9ecae1", "click": "#4292c6", "cart": "#fd8d3c", "purchase": "#d94801", "rating": "#6a51a3"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BY = ("item", "user")
_FREQ_NAMES = {"h": "hour", "D": "day", "W": "week", "MS": "month", "M": "month"}


def apply_layout(fig: go.Figure, title: str | None, height: int = 420, **kwargs) -> go.Figure:
    """``fig`` with recapp's template, ``title``, ``height`` and margins (and any other layout ``kwargs``)."""
    fig.update_layout(template=TEMPLATE, title=title, height=height, margin=dict(l=60, r=30, t=70, b=50), **kwargs)
    return fig
