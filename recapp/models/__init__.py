"""Recommenders: one interface (:class:`Recommender`) for every family."""
from recapp.models.base import REGISTRY, NotFittedError, Recommender
from recapp.models.saved import load
from recapp.models.ease import EASE
from recapp.models.knn import ItemKNN, UserKNN
from recapp.models.item2vec import Item2Vec
from recapp.models.popularity import Popularity
from recapp.models.als import ALS
from recapp.models.bpr import BPR
from recapp.models.ratingmf import RatingMF
from recapp.models.neumf import NeuMF
from recapp.models.multvae import MultVAE
from recapp.models.lightgcn import LightGCN
from recapp.models.content import TfidfContent
from recapp.models.hybrid import Hybrid
from recapp.models.twostage import TwoStageRanker
from recapp.models.sequential import GRU4Rec, SASRec

__all__ = ["GRU4Rec", "SASRec", "Recommender", "NotFittedError", "REGISTRY", "load", "Popularity", "ItemKNN", "UserKNN", "EASE",
           "ALS", "BPR", "RatingMF", "NeuMF", "MultVAE", "LightGCN", "TfidfContent", "Hybrid",
           "Item2Vec", "TwoStageRanker"]
