"""Real-time recommendation: the engine, event sources, the event store and prequential evaluation.

>>> from recapp.realtime import Engine, EventStore, replay_movielens, ShopperSimulator
"""
from recapp.realtime.engine import Engine, IngestResult
from recapp.realtime.store import AppendResult, EventStore, check_events
from recapp.realtime.stream import Replay, ShopperSimulator, replay_movielens

__all__ = ["Engine", "IngestResult", "EventStore", "AppendResult", "check_events", "Replay", "ShopperSimulator", "replay_movielens"]
