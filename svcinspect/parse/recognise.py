"""Say what an input is when it is not ``iptables-save`` text, and what to run instead.

:func:`describe_other_input` is the one place that recognises other dataplanes'
output (kube-proxy's nftables mode, iptables-nft rules printed by ``nft``,
``nft -j`` JSON, IPVS's ``ipvsadm``) and other files (Kubernetes objects, a
README). The nftables reader can later replace the nftables branches by a
dispatch to itself; the messages say what svcinspect reads today.
"""

from __future__ import annotations

import re

NFT_KUBE_PROXY = ("kube-proxy runs in nftables mode here (`table ip kube-proxy` / `table ip6 kube-proxy`): its rules "
                  "are not iptables rules, so iptables-save shows none of them; pass this nft text (or `nft -j` "
                  "JSON) as its own --rules, not mixed with iptables-save dumps")
NFT_IPTABLES = ("these are iptables rules (iptables-nft backend) as `nft` prints them; svcinspect reads the "
                "iptables-save form of the same rules: run `iptables-save` (and `ip6tables-save`) on the node")

_NFT_TABLE = re.compile(r"^table (ip|ip6|inet|arp|bridge|netdev) (\S+) \{", re.M)
# kube-proxy's own transactions (knftables, nft -f): `add rule ip kube-proxy CHAIN ...`
NFT_ADD = re.compile(r"^\s*add\s+(table|chain|rule|set|map|element)\s+(ip|ip6|inet)\s+\S+", re.M)


def looks_like_nft(text: str) -> bool:
    """True for ``nft list`` text (a ``table FAMILY NAME {`` line), kube-proxy's
    ``add ...`` transactions or ``nft -j`` JSON: what the nftables reader takes.
    (Here, not in that reader, so that iptables input never imports it.)

    >>> looks_like_nft("table ip kube-proxy {"), looks_like_nft("*nat")
    (True, False)
    """
    head = text.lstrip()[:200000]
    if head.startswith("{") and '"nftables"' in head[:2000]:
        return True
    return bool(re.search(r"^\s*table\s+(ip|ip6|inet)\s+\S+\s*\{", head, re.M)) or bool(NFT_ADD.search(head))


def describe_other_input(text: str) -> str | None:
    """A one-line description of ``text`` when it is a known non-iptables-save
    format, else None.

    >>> describe_other_input('{"nftables": [{"table": {"family": "ip", "name": "kube-proxy"}}]}')[:48]
    '`nft -j` JSON: kube-proxy runs in nftables mode '
    """
    head = text[:1 << 20].lstrip()
    if head.startswith("{") and '"nftables"' in head[:200]:
        if re.search(r'"table":\s*\{[^}]*"name":\s*"kube-proxy"', head) or \
                re.search(r'"name":\s*"kube-proxy"[^}]*"family":\s*"ip6?"', head):
            return "`nft -j` JSON: " + NFT_KUBE_PROXY
        return "`nft -j` JSON: " + NFT_IPTABLES if "KUBE-" in head else \
            "`nft -j` JSON (nftables ruleset) with no kube-proxy rules; svcinspect reads iptables-save output"
    tables = _NFT_TABLE.findall(head)
    if tables:
        if any(name == "kube-proxy" and fam in ("ip", "ip6") for fam, name in tables):
            return "an nftables ruleset: " + NFT_KUBE_PROXY
        if "KUBE-" in head:
            return "an nftables ruleset: " + NFT_IPTABLES
        return "an nftables ruleset (`nft list ruleset`) with no kube-proxy rules; svcinspect reads iptables-save output"
    return None


def looks_like_prose(lines: list[str]) -> str | None:
    """Why a text that is mostly not dump lines looks like documentation, or None."""
    md = sum(1 for ln in lines if ln.startswith(("#", "```", "|", "- ", "* ", "> ")) or ln.endswith("  "))
    if md >= max(3, len(lines) // 10):
        return "this looks like Markdown or other documentation (a README?), not iptables-save output"
    return None
