"""One package per dataplane kube-proxy programs, beside the shared service model.

Each dataplane reads its own rules into its own model (``iptables/``: saved or
live iptables tables; ``nftables/``: the ``kube-proxy`` nft tables) and turns
them into the shared service-port model (:mod:`svcinspect.model.service`) and
the shared flow model (:mod:`svcinspect.model.flow`); both evaluators walk
their rules over :mod:`svcinspect.simulate`'s worlds. The analyses above
(trace, check's comparison, graph, diff, balance, the renderers) read only
those models.

``dataplane_of(ruleset)`` is the one registry the analyses ask: which functions
build service ports, select them by name and simulate packets for this ruleset,
and what really differs between the modes (named properties, not ``if mode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Dataplane:
    name: str
    build_service_ports: Callable[..., Any]
    select_service_ports: Callable[..., Any]
    evaluator: Callable[..., Any]          # (ruleset, family, env) -> object with .simulate(packet)
    localhost_node_ports: bool             # does a node port answer on 127.0.0.1?


def _iptables() -> Dataplane:
    from svcinspect.dataplane.iptables import evaluate, services
    return Dataplane("iptables", services.build_service_ports, services.select_service_ports, evaluate.Evaluator, True)


def _nftables() -> Dataplane:
    from svcinspect.dataplane.nftables import evaluate, services
    return Dataplane("nftables", services.build_service_ports, services.select_service_ports, evaluate.NftEvaluator,
                     False)


_REGISTRY = {"iptables": _iptables, "nftables": _nftables}


def dataplane_name(ruleset: Any) -> str:
    """``"nftables"`` for an nftables ruleset, ``"iptables"`` for the iptables model."""
    return getattr(ruleset, "dataplane", "iptables")


def dataplane_of(ruleset: Any) -> Dataplane:
    return _REGISTRY[dataplane_name(ruleset)]()


# --- what the analyses call: the ruleset's own dataplane answers ------------------

def build_service_ports(ruleset: Any, only=None) -> list:
    """Every service port the rules implement (the shared model), by the ruleset's dataplane."""
    return dataplane_of(ruleset).build_service_ports(ruleset, only)


def select_service_ports(ruleset: Any, query: str | None = None, namespace: str | None = None) -> list:
    """The service ports ``query`` names (``ns/name[:port]``, a chain name or hash)."""
    return dataplane_of(ruleset).select_service_ports(ruleset, query, namespace)


def simulate(ruleset: Any, packet: Any, env: Any = None) -> Any:
    """Run ``packet`` through the ruleset's tables of its address family, with the
    evaluator of the ruleset's dataplane."""
    from svcinspect.model.netfilter import Family
    from svcinspect.simulate import Environment
    return dataplane_of(ruleset).evaluator(ruleset, Family(packet.family), env or Environment()).simulate(packet)
