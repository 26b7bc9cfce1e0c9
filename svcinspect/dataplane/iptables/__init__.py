"""kube-proxy's iptables mode (both backends, legacy and nft).

``parse`` reads ``iptables-save`` text into :mod:`svcinspect.model.netfilter`;
``index`` and ``bulk`` are its fast paths over dumps shaped as the save prints
them; ``kubeproxy`` knows kube-proxy's chain names, hashes and comments;
``services`` turns the tables into the shared service-port model
(:mod:`svcinspect.model.service`); ``evaluate`` simulates packets through nat
and filter.
"""
