"""Real-time recommendation: the engine, event sources, the event store and prequential evaluation.

The event sources are :class:`Replay` (a real log in time order) and :class:`ShopperStream`
(simulated shoppers reacting to the engine); the policy simulator for A/B tests and bandits
is :class:`recapp.experiment.ShopperSimulator`.

>>> from recapp.realtime import Engine, EventStore, replay_movielens, ShopperStream
"""
from recapp.realtime.engine import Engine, IngestResult
from recapp.realtime.store import AppendResult, EventStore, check_events
from recapp.realtime.simulated_shoppers import ShopperStream
from recapp.realtime.stream import Replay, replay_movielens

__all__ = ["Engine", "IngestResult", "EventStore", "AppendResult", "check_events", "Replay", "ShopperStream", "replay_movielens"]
