"""Recommenders: one interface (:class:`Recommender`) for every family."""
from recapp.models.base import REGISTRY, NotFittedError, Recommender, load
from recapp.models.ease import EASE
from recapp.models.knn import ItemKNN, UserKNN
from recapp.models.popularity import Popularity

__all__ = ["Recommender", "NotFittedError", "REGISTRY", "load", "Popularity", "ItemKNN", "UserKNN", "EASE"]
