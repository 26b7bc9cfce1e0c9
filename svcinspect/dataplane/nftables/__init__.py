"""kube-proxy's nftables mode: ``nft list ruleset`` text and ``nft -j`` JSON.

``parse`` reads both into :mod:`.model` (rules as libnftables-json expressions,
each rule, set, map and element with its source line or JSON position);
``services`` turns it into the shared service-port model; ``evaluate`` answers
packets with nft semantics in the shared flow model; ``render`` prints the model
back as nft text.
"""
