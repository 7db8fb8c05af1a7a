"""Recommenders: one interface (:class:`Recommender`) for every family."""
from recapp.models.base import REGISTRY, NotFittedError, Recommender, load
from recapp.models.ease import EASE
from recapp.models.knn import ItemKNN, UserKNN
from recapp.models.popularity import Popularity
from recapp.models.sequential import GRU4Rec, SASRec

__all__ = ["GRU4Rec", "SASRec", "Recommender", "NotFittedError", "REGISTRY", "load", "Popularity", "ItemKNN", "UserKNN", "EASE"]
