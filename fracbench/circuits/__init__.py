"""Circuits: node sets found by learned masks (Gao et al.), mean and resample ablation, faithfulness."""

from .ablation import NodeStatistics, PromptBatches, ablated_logit_diffs, ablation_interventions, logit_diffs_under, node_statistics
from .faithfulness import Conditions, measure_conditions
from .nodes import NodeSite, node_sites, total_nodes
from .search import DEFAULT_TARGET, Circuit, SearchSettings, median_restart, search_circuit, search_circuits

__all__ = [
    "DEFAULT_TARGET",
    "Circuit",
    "Conditions",
    "NodeSite",
    "NodeStatistics",
    "PromptBatches",
    "SearchSettings",
    "ablated_logit_diffs",
    "ablation_interventions",
    "logit_diffs_under",
    "measure_conditions",
    "median_restart",
    "node_sites",
    "node_statistics",
    "search_circuit",
    "search_circuits",
    "total_nodes",
]
