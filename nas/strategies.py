"""Black-box search strategies: the contract and registry (:mod:`nas.strategy_base`), Optuna's
samplers (:mod:`nas.optuna_strategies`), the strategies that propose whole architectures
(:mod:`nas.proposals`) and the predictor (:mod:`nas.predictor`). Importing this module
registers them all in :data:`STRATEGIES`; their names stay reachable here, where sampler
snapshots pickled before the split look for them.
"""
from graphnas.nas.strategy_base import STRATEGIES, Strategy
from graphnas.nas.proposals import (DistinctSampler, Evaluated, History, LocalSearch, ProposalSampler,
                                    ProposalStrategy, RegularizedEvolution, _DrawTrial, _Ids, _in, _moves, _Prefix,
                                    _preset, _rank)
from graphnas.nas.optuna_strategies import NSGA2, TPE, OptunaStrategy, PicklableNSGAII, Random
from graphnas.nas.predictor import Auto, MLPEnsemble, PredictorSearch, _hvi_2d, _nondominated, _normal_cdf, _ranks

__all__ = ["STRATEGIES", "Auto", "DistinctSampler", "Evaluated", "History", "LocalSearch", "MLPEnsemble", "NSGA2",
           "OptunaStrategy", "PicklableNSGAII", "PredictorSearch", "ProposalSampler", "ProposalStrategy", "Random",
           "RegularizedEvolution", "Strategy", "TPE"]
# private names too (snapshots and tests reach them here)
_ = (_DrawTrial, _Ids, _in, _moves, _Prefix, _preset, _rank, _hvi_2d, _nondominated, _normal_cdf, _ranks)
