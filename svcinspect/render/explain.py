"""Text and JSON for ``explain``: the sentences of :mod:`svcinspect.explain` in
English or Chinese, each followed by the rules it cites.

Every message key the analysis can produce has a text in both catalogs (a test
checks it); arguments are plain strings filled in with ``str.format_map``.
"""

from __future__ import annotations

import textwrap

from svcinspect.explain import Citation, Explanation, Section, Sentence

LANGS = ("en", "zh")

EN: dict[str, str] = {
    # sections
    "section.overview": "What kube-proxy made for {name}",
    "section.chains": "The chains, and what each one is for",
    "section.changes": "What would change",
    "client.pod": "From a pod ({src})",
    "client.node": "From this node itself ({src})",
    "client.outside": "From outside the cluster ({src})",
    "client.localhost": "From this node via localhost ({src})",
    "client.allowed": "From an allowed source ({src})",
    "client.blocked": "From a source outside loadBalancerSourceRanges ({src})",
    "client.other": "{label}",
    "entry.clusterIP": "to the cluster IP {dst}",
    "entry.nodePort": "to the node port {dst}",
    "entry.externalIP": "to the external IP {dst}",
    "entry.loadBalancer": "to the load-balancer IP {dst}",
    "entry.healthCheckNodePort": "to the health-check node port {dst}",
    # overview
    "overview.what": "{name} is a Service port for {proto}. kube-proxy turned it into the netfilter rules "
                     "below; all of them are in the nat and filter tables of this node.",
    "overview.cluster_ip": "Its cluster IP is {addr} ({proto}): a virtual address that no interface has; only "
                           "these rules make it answer.",
    "overview.node_port": "It is also a NodePort Service: port {port}/{proto} on the node's own addresses "
                          "leads to the same endpoints as the cluster IP's port {svcport}.",
    "overview.node_port_localhost": "It is also a NodePort Service: port {port}/{proto} on the node's own "
                                    "addresses, and on 127.0.0.1 for programs on the node, leads to the same "
                                    "endpoints as the cluster IP's port {svcport}.",
    "overview.external_ip": "Its external IP {addr} is handled like the cluster IP, for traffic that reaches "
                            "this node addressed to it.",
    "overview.load_balancer": "Its load-balancer IP {addr} is handled on this node too (source ranges: "
                              "{ranges}).",
    "overview.health_check": "Port {port} is its health-check node port: the cloud load balancer asks it whether "
                             "this node has a local endpoint.",
    "overview.endpoint": "Endpoint {ep} gets {share} of new connections ({pct}), through chain {chain}.",
    "overview.endpoint_pod": "Endpoint {ep} (pod {pod} on node {node}) gets {share} of new connections ({pct}), "
                             "through chain {chain}.",
    "overview.endpoint_unknown": "Chain {chain} gets {share} of new connections ({pct}), but the input does not "
                                 "have it, so its endpoint is unknown.",
    "overview.no_endpoints": "It has no usable endpoint: the rules answer new connections with {verdict}.",
    # chains
    "chain.builtin.nat.PREROUTING": "nat PREROUTING is where the kernel sends every packet that arrives at this "
                                    "node (from a pod's virtual interface or from the network) before routing; "
                                    "kube-proxy hooks its KUBE-SERVICES chain in here.",
    "chain.builtin.nat.OUTPUT": "nat OUTPUT is the same hook for packets that programs on this node send "
                                "(including hostNetwork pods).",
    "chain.builtin.nat.POSTROUTING": "nat POSTROUTING is the last hook before a packet leaves; kube-proxy "
                                     "masquerades there the packets it marked.",
    "chain.builtin.filter.FORWARD": "filter FORWARD sees packets routed through this node (for example to a pod); "
                                    "kube-proxy's filter chains are hooked in here.",
    "chain.builtin.filter.INPUT": "filter INPUT sees packets for this node itself.",
    "chain.builtin.filter.OUTPUT": "filter OUTPUT sees packets sent by programs on this node.",
    "chain.nat.services": "KUBE-SERVICES (nat) is the dispatcher: one rule per Service address and port sends "
                          "the packet to that Service's chain; its last rule sends packets for the node's own "
                          "addresses to KUBE-NODEPORTS.",
    "chain.nat.nodeports": "KUBE-NODEPORTS (nat) has one rule per node port.",
    "chain.svc": "{chain} is this Service port's own chain (cluster policy): it marks traffic from outside the "
                 "pod network for masquerading, then picks one of the {n} endpoints at random.",
    "chain.svc_plain": "{chain} is this Service port's own chain (cluster policy): it picks one of the {n} "
                       "endpoints at random.",
    "chain.svl": "{chain} is the local-policy chain: it picks only among the endpoints on this node.",
    "chain.ext": "{chain} handles traffic that arrives other than through the cluster IP (node port, external or "
                 "load-balancer IP): it decides about masquerading, then hands over to the endpoint choice.",
    "chain.fw": "{chain} checks loadBalancerSourceRanges: allowed sources go on, others fall off its end.",
    "chain.xlb": "{chain} is the pre-1.24 chain for externalTrafficPolicy: Local.",
    "chain.sep": "The {n} KUBE-SEP chains ({chains}) are one per endpoint: each rewrites the destination to its "
                 "endpoint (DNAT), and marks a pod that reaches itself for masquerading (hairpin).",
    "chain.nat.mark-masq": "KUBE-MARK-MASQ (nat) only sets bit 0x4000 of the packet's mark: \"masquerade me "
                           "when I leave\".",
    "chain.nat.postrouting": "KUBE-POSTROUTING (nat) masquerades packets that carry the 0x4000 mark and lets "
                             "every other packet go untouched.",
    "chain.filter.services": "KUBE-SERVICES (filter) rejects or drops connections to Services without (local) "
                             "endpoints.",
    "chain.filter.external-services": "KUBE-EXTERNAL-SERVICES (filter) does the same for node ports, external and "
                                      "load-balancer IPs.",
    "chain.filter.nodeports": "KUBE-NODEPORTS (filter) accepts health-check node ports.",
    "chain.filter.forward": "KUBE-FORWARD (filter) drops invalid packets and accepts forwarded traffic that "
                            "kube-proxy marked, and replies of known connections.",
    "chain.filter.proxy-firewall": "KUBE-PROXY-FIREWALL (filter) drops load-balancer traffic from sources that "
                                   "loadBalancerSourceRanges does not allow.",
    "chain.filter.firewall": "KUBE-FIREWALL (filter) drops packets to 127.0.0.0/8 that come from elsewhere, so "
                             "that localhost node ports stay local.",
    "chain.other": "{chain} ({table}) is on the way too.",
    # a way in
    "way.start.prerouting": "A {proto} packet from {src} to {dst} arrives at this node.",
    "way.start.output": "A program on this node sends a {proto} packet from {src} to {dst}.",
    "step.hook.PREROUTING": "nat PREROUTING sends it to {target}, as it does every packet.",
    "step.hook.OUTPUT": "nat OUTPUT sends it to {target}, as it does every packet sent from this node.",
    "step.no_dispatch": "No rule of nat KUBE-SERVICES matches {dst}/{proto}: kube-proxy wrote no chains for it "
                        "(a Service without endpoints has none), so its destination is not rewritten.",
    "step.hook_assumed": "The input has no nat {chain} rule jumping to {target} (kube-proxy's restore input, or "
                         "an excerpt): svcinspect assumes kube-proxy's standard hook, which sends every packet "
                         "there on a real node.",
    "step.dispatch": "In KUBE-SERVICES this rule matches destination {dst}/{proto} and jumps to {target}.",
    "step.to_nodeports": "No Service address matches {dst}, but it is an address of this node, so the last rule of "
                         "KUBE-SERVICES jumps to KUBE-NODEPORTS.",
    "step.nodeport": "In KUBE-NODEPORTS, destination port {port} matches this Service's rule, which jumps to "
                     "{target}.",
    "step.nodeport_localhost": "In KUBE-NODEPORTS, destination port {port} to 127.0.0.0/8 matches the localhost "
                               "rule, which jumps to {target}.",
    "step.fw_allowed": "The source {src} is inside the allowed ranges, so {target} comes next.",
    "step.ext_pod_shortcut": "The packet comes from a pod, so {chain} sends it to {target}, the cluster-wide "
                             "choice (externalTrafficPolicy: Local only applies to traffic from outside).",
    "step.ext_local_shortcut": "The packet comes from this node, so {chain} sends it to {target}, the cluster-wide "
                               "choice.",
    "step.ext_to_svc": "{chain} then hands the packet to {target}, the cluster-wide endpoint choice.",
    "step.ext_to_svl": "{chain} then hands the packet to {target}, which picks only endpoints on this node.",
    "masq.off_cluster": "The source {src} is not in the pod network {cidr}, so this rule marks the packet for "
                        "masquerading. A reply from the endpoint must come back through this node, which holds the "
                        "connection's NAT state; a source outside the pod network could be answered by another path.",
    "masq.hairpin": "The source {src} is this endpoint itself (a pod reaching its own Service), so the packet is "
                    "marked for masquerading; otherwise the pod would see a reply from its own address.",
    "masq.local_source": "The source {src} is an address of this node, so the packet is marked for masquerading.",
    "masq.external": "Every packet arriving this way is marked for masquerading (externalTrafficPolicy: Cluster): "
                     "the endpoint may be on another node, and its reply must come back through this one, which "
                     "holds the NAT state. The price is that the endpoint does not see the client's address.",
    "masq.other": "{chain} marks the packet for masquerading.",
    "step.mark": "{action}.",
    "split.one": "{chain} has a single endpoint: it always jumps to {sep}, which leads to {ep}.",
    "split.intro": "{chain} picks an endpoint at random, rule by rule (lines {lines}); each rule takes its share of "
                   "what the rules before it left:",
    "split.first": "line {line}: with probability {p} it jumps to {sep}: {ep} gets {share} ({pct}).",
    "split.next": "line {line}: of the remaining {rest}, probability {p} jumps to {sep}: {ep} gets {share} ({pct}).",
    "split.last": "line {line}: whatever is left ({rest}) jumps to {sep}, unconditionally: {ep} gets {share} "
                  "({pct}).",
    "split.affinity": "With session affinity, a client's later connections within {seconds} s skip this draw and "
                      "go to the endpoint it got first.",
    "step.dnat": "Say it picks {chain}: that chain rewrites the destination {before} to {after} (DNAT). From here "
                 "on every table sees the endpoint's address.",
    "step.dnat_others": "The other {n} endpoint chains do the same with their own addresses.",
    "step.masquerade": "The source {src} is rewritten to {snat}.",
    "step.reject": "{chain} rejects the connection.",
    "step.drop": "{chain} drops the packet.",
    "step.generic": "{table} {chain}: {action}.",
    "filter.accept_marked": "In filter {hook}, {chain} accepts the packet because it carries kube-proxy's mark.",
    "filter.accept": "In filter {hook}, {chain} accepts the packet.",
    "filter.reject": "In filter {hook}, {chain} rejects it.",
    "filter.drop": "In filter {hook}, {chain} drops it.",
    "filter.pass": "In filter {hook}, kube-proxy's chains have no rule against a connection to {dst}, so the chain's "
                   "policy lets it through.",
    "post.masq": "In nat POSTROUTING, KUBE-POSTROUTING sees the mark, clears it, and masquerades: the source {src} "
                 "becomes {snat}, the node's own address.",
    "post.masq_same": "In nat POSTROUTING, KUBE-POSTROUTING sees the mark, clears it, and masquerades: the "
                      "source becomes the address of the interface the packet leaves by, here {snat}, which it "
                      "already was.",
    "post.no_mark": "In nat POSTROUTING, KUBE-POSTROUTING returns at once, because the packet has no mark: the "
                    "source {src} is kept.",
    "post.other": "nat POSTROUTING leaves the packet as it is.",
    "localhost.route_localnet": "The kernel normally refuses to route a packet from 127.0.0.1 anywhere else; "
                                "kube-proxy sets net.ipv4.conf.all.route_localnet=1 for localhost node ports "
                                "(a sysctl, not in the rules), and the masquerade below gives the packet a source "
                                "the endpoint can answer.",
    "localhost.firewall": "Only this node can use 127.0.0.1:port: this rule drops packets to 127.0.0.0/8 from a "
                          "source that is not a loopback address, unless they belong to a known (or DNATed) "
                          "connection, so other hosts cannot reach it.",
    "result.dnat_kept": "So the connection reaches the chosen endpoint ({n} possible) with its source {src} "
                        "unchanged: the endpoint sees the real client address.",
    "result.dnat_masq": "So the connection reaches the chosen endpoint ({n} possible) from {src_after}: the "
                        "endpoint sees this node's address, not {src}.",
    "result.dnat_masq_same": "So the connection reaches the chosen endpoint ({n} possible) from {src_after}, this "
                             "node's address.",
    "result.masq_differs": "Whether the packet is masqueraded depends on the endpoint chosen (see the trace).",
    "reply.kept": "The reply goes to {src}, a pod on this node, so it passes back through this node, where "
                  "conntrack undoes the DNAT: the client sees an answer from {orig}.",
    "reply.kept_direct": "The endpoint replies to {src} itself; that reply has to pass through this node, where "
                         "conntrack undoes the DNAT so that the client sees an answer from {orig} (with a Local "
                         "policy the endpoint is on this node, so it does).",
    "reply.masq": "The endpoint replies to {snat}; conntrack on this node undoes both rewrites, so the client "
                  "{src} sees an answer from {orig}.",
    "reply.localhost": "The endpoint replies to {snat}; conntrack undoes both rewrites and hands the answer to the "
                       "program as coming from {orig}.",
    "result.reject": "With probability {p} the connection is rejected (the client gets an error at once).",
    "result.drop": "With probability {p} the packet is dropped (the client waits and times out).",
    "result.reject_always": "So the connection is rejected: the client gets an error at once.",
    "result.drop_always": "So the packet is dropped: the client waits and times out.",
    "result.none_always": "No kube-proxy rule handles the packet: it is not a Service connection.",
    "result.none": "With probability {p} no kube-proxy rule handles the packet: it is not a Service connection.",
    "result.condition": "This depends on something the input does not say: {text}.",
    # changes
    "change.affinity_on": "Session affinity (ClientIP, {seconds} s) is on: these rules send a client that "
                          "connected recently straight back to its endpoint, before the random choice.",
    "change.affinity_off": "Session affinity is off. With sessionAffinity: ClientIP, kube-proxy would add one "
                           "'-m recent --rcheck' rule per endpoint before the random choice, and a '--set' to each "
                           "endpoint's DNAT rule, so a client keeps its endpoint.",
    "change.external_local": "externalTrafficPolicy (or internalTrafficPolicy) is Local: {chain} chooses only "
                             "among the {n} endpoint(s) on this node, and external traffic keeps its source "
                             "address; with no local endpoint, this node drops it.",
    "change.internal_local": "internalTrafficPolicy is Local: {chain} chooses only among the {n} endpoint(s) on "
                             "this node.",
    "change.external_cluster": "externalTrafficPolicy is Cluster (this rule masquerades everything arriving "
                               "from outside). With Local, kube-proxy would add a KUBE-SVL chain with only this "
                               "node's endpoints, masquerade nothing from outside, and drop the traffic on a node "
                               "without a local endpoint.",
    "change.internal_cluster": "Traffic policies are Cluster: every endpoint in the cluster can be chosen. With "
                               "internalTrafficPolicy: Local, only endpoints on this node would be.",
    "change.no_endpoints": "If the Service lost all its endpoints, kube-proxy would remove these chains and reject "
                           "new connections instead, as it does here for another Service:",
    "change.no_endpoints_general": "If the Service lost all its endpoints, kube-proxy would remove these chains "
                                   "and reject new connections in the filter table instead.",
    # citations
    "cite": "{table} {chain}, line {line}",
    "cite.noline": "{table} {chain}",
    "cite.general": "kube-proxy or kernel behaviour: no rule in the input shows it",
    "cite.assumed": "assumed {table} {chain} hook, not in the input",
    "warnings": "Warnings:",
    # nftables mode: sets and maps
    "nft.set.cluster-ips": "@cluster-ips (set) holds every cluster IP of this family; kube-proxy uses it to mark "
                           "traffic to a cluster IP from outside the pod network for masquerading.",
    "nft.set.nodeport-ips": "@nodeport-ips (set) holds the node addresses on which node ports answer "
                            "(--nodeport-addresses; the node IP by default).",
    "nft.set.service-ips": "@service-ips (verdict map) is the dispatcher: one element per Service address, protocol "
                           "and port, each going to that Service port's chain.",
    "nft.set.service-nodeports": "@service-nodeports (verdict map) has one element per node port (protocol . port), "
                                 "each going to that Service port's external chain.",
    "nft.set.no-endpoint-services": "@no-endpoint-services (verdict map) rejects or drops connections to Service "
                                    "addresses whose port has no (local) endpoints.",
    "nft.set.no-endpoint-nodeports": "@no-endpoint-nodeports (verdict map) does the same for node ports.",
    "nft.set.firewall-ips": "@firewall-ips (verdict map) sends load-balancer IPs with loadBalancerSourceRanges to "
                            "their firewall chain.",
    "nft.set.hairpin-connections": "@hairpin-connections (set) lists endpoint-to-itself pairs; the masquerading "
                                   "chain masquerades a pod that reaches itself through its Service.",
    "nft.set.affinity": "{chain} (set) remembers, with a timeout, the clients that reached one endpoint: session "
                        "affinity.",
    # nftables mode: chains
    "nft.chain.hook": "{chain} is a base chain: kube-proxy hooks it into the kernel at {type} {hook}, priority "
                      "{priority}, and jumps from it to its own chains.",
    "nft.chain.services": "services (nat) looks the packet up in @service-ips (destination address, protocol and "
                          "port) and, for the node's own addresses in @nodeport-ips, in @service-nodeports, and goes "
                          "to the Service port's chain it finds.",
    "nft.chain.service": "{chain} is this Service port's own chain (cluster policy): it marks traffic from outside "
                         "the pod network for masquerading and picks one of the {n} endpoints.",
    "nft.chain.local": "{chain} is the local-policy chain: it picks only among the endpoints on this node.",
    "nft.chain.external": "{chain} handles traffic that arrives other than through the cluster IP (node port, "
                          "external or load-balancer IP) and applies externalTrafficPolicy.",
    "nft.chain.endpoint": "{chain} is one endpoint's chain: it rewrites the destination to that endpoint (and, with "
                          "affinity, remembers the client).",
    "nft.chain.firewall": "{chain} checks loadBalancerSourceRanges: sources outside the ranges are dropped.",
    "nft.chain.masquerading": "masquerading (nat) masquerades packets that carry kube-proxy's mark 0x4000 (and "
                              "hairpin connections), clearing the mark.",
    "nft.chain.mark-for-masquerade": "mark-for-masquerade (nat) only sets bit 0x4000 of the packet's mark: "
                                     "\"masquerade me later\".",
    "nft.chain.firewall-check": "firewall-check (filter) sends load-balancer traffic to @firewall-ips before DNAT.",
    "nft.chain.cluster-ips-check": "cluster-ips-check (filter) rejects connections to a cluster IP on a port the "
                                   "Service does not have, and drops traffic to unallocated service-CIDR addresses.",
    "nft.chain.service-endpoints-check": "service-endpoints-check (filter) sends new connections to Service "
                                         "addresses through @no-endpoint-services.",
    "nft.chain.nodeport-endpoints-check": "nodeport-endpoints-check (filter) sends new connections to node ports "
                                          "through @no-endpoint-nodeports.",
    "nft.chain.endpoints-check": "endpoints-check (filter) rejects or drops new connections to Service ports without "
                                 "endpoints (@no-endpoint-services, @no-endpoint-nodeports).",
    "nft.chain.reject-chain": "reject-chain (filter) rejects the connection, so the client gets an error at once.",
    "nft.chain.nodeports": "nodeports (nat) dispatches node ports through @service-nodeports.",
    # nftables mode: a way in
    "nft.step.hook": "{chain} (the nat {hook} hook) sends it to {target}, as it does every packet.",
    "nft.step.no_dispatch": "No element of @service-ips or @service-nodeports matches {dst}/{proto}: kube-proxy "
                            "wrote nothing for it here, so the packet is not a Service connection in these rules.",
    "nft.step.dispatch": "In services, @service-ips has an element for destination {dst}/{proto}: it goes to "
                         "{target}.",
    "nft.step.nodeport": "The destination {dst} is in @nodeport-ips, so services looks up {proto} port {port} in "
                         "@service-nodeports: it goes to {target}.",
    "nft.step.no_endpoints": "This Service port has no endpoints: the no-endpoint map sends {dst}/{proto} to "
                             "{target}.",
    "nft.step.affinity_hit": "If this client is in {chain}'s affinity set (it connected recently), it goes straight "
                             "back to {target}.",
    "nft.step.dnat": "Say the draw gives {after}: {chain} rewrites the destination {before} to {after} (DNAT). From "
                     "here on every chain sees the endpoint's address.",
    "nft.step.elements": "The rules looked these elements up.",
    "nft.filter.pass": "In {base} (the {hook} hook), kube-proxy's checks ({checks}) have nothing against a new "
                       "connection to {dst}, so it goes on.",
    "nft.post.masq": "In nat-postrouting, the masquerading chain sees the mark, clears it, and masquerades: the "
                     "source {src} becomes {snat}, the node's own address.",
    "nft.post.masq_same": "In nat-postrouting, the masquerading chain sees the mark, clears it, and masquerades: the "
                          "source becomes the address of the interface the packet leaves by, here {snat}, which it "
                          "already was.",
    "nft.post.no_mark": "In nat-postrouting, the masquerading chain leaves the packet alone, because it has no mark: "
                        "the source {src} is kept.",
    "nft.split.one": "{chain} has a single endpoint, {ep}: every new connection goes there.",
    "nft.split.intro": "{chain} picks one of its {n} endpoints with numgen random mod {mod}: each number drawn is an "
                       "element of the map in this rule, so each endpoint gets exactly its elements' share:",
    "nft.split.share": "{ep} gets {share} ({pct}).",
    "nft.change.affinity_off": "Session affinity is off. With sessionAffinity: ClientIP, kube-proxy would add one "
                               "affinity set per endpoint (with a timeout), a rule sending a client found in it "
                               "straight to that endpoint before the random choice, and an 'update' of the set in "
                               "each endpoint's chain, so a client keeps its endpoint.",
    "nft.change.no_endpoints": "If the Service lost all its endpoints, kube-proxy would remove its service- chains "
                               "and put its addresses in @no-endpoint-services, so new connections are rejected at "
                               "once, as it does here for another Service:",
    "nft.filter.reject": "In {base} (the {hook} hook), {chain} rejects it (reached through {checks}).",
    "nft.filter.drop": "In {base} (the {hook} hook), {chain} drops it (reached through {checks}).",
    "nft.filter.accept": "In {base} (the {hook} hook), {chain} accepts it (reached through {checks}).",
    "nft.step.no_dispatch_no_endpoints": "This Service port has no endpoints, so @service-ips and @service-nodeports "
                                         "have no element for {dst}/{proto}: nat leaves the packet as it is, and "
                                         "kube-proxy's filter chains decide.",
    "nft.step.affinity_update": "{chain} remembers the client {src} in its affinity set (for {seconds} s), so its "
                                "next connections come back to this endpoint.",
    "localhost.not_served": "kube-proxy's {mode} mode serves no node port on 127.0.0.1 (it neither sets "
                            "route_localnet nor matches loopback destinations), so no rule rewrites this packet.",
    "nft.change.no_endpoints_general": "If the Service lost all its endpoints, kube-proxy would remove its service- "
                                       "chains and put its addresses in @no-endpoint-services, so new connections "
                                       "are rejected at once.",
    "nft.change.external_cluster": "externalTrafficPolicy is Cluster (this rule masquerades everything arriving from "
                                   "outside). With Local, kube-proxy would add a local- chain with only this node's "
                                   "endpoints, masquerade nothing from outside, and drop the traffic on a node "
                                   "without a local endpoint.",
}

ZH: dict[str, str] = {
    "section.overview": "kube-proxy 为 {name} 创建了什么",
    "section.chains": "这些链，以及每条链的作用",
    "section.changes": "哪些设置会改变这一切",
    "client.pod": "从一个 Pod（{src}）",
    "client.node": "从本节点自身（{src}）",
    "client.outside": "从集群外部（{src}）",
    "client.localhost": "从本节点经 localhost（{src}）",
    "client.allowed": "从允许的源地址（{src}）",
    "client.blocked": "从 loadBalancerSourceRanges 之外的源地址（{src}）",
    "client.other": "{label}",
    "entry.clusterIP": "访问集群 IP {dst}",
    "entry.nodePort": "访问节点端口 {dst}",
    "entry.externalIP": "访问外部 IP {dst}",
    "entry.loadBalancer": "访问负载均衡 IP {dst}",
    "entry.healthCheckNodePort": "访问健康检查节点端口 {dst}",
    "overview.what": "{name} 是一个 {proto} 协议的 Service 端口。kube-proxy 把它变成了下面这些 netfilter 规则，"
                     "全部位于本节点的 nat 表和 filter 表中。",
    "overview.cluster_ip": "它的集群 IP 是 {addr}（{proto}）：这是一个虚拟地址，没有任何网卡拥有它，"
                           "只是靠这些规则才能访问。",
    "overview.node_port": "它也是一个 NodePort 类型的 Service：节点自身地址上的 {port}/{proto} 端口，"
                          "和集群 IP 的 {svcport} 端口通向同一组后端端点。",
    "overview.node_port_localhost": "它也是一个 NodePort 类型的 Service：节点自身地址上的 {port}/{proto} 端口"
                                    "（本节点上的程序还可以用 127.0.0.1 访问），和集群 IP 的 {svcport} 端口"
                                    "通向同一组后端端点。",
    "overview.external_ip": "发往它的外部 IP {addr} 并到达本节点的流量，按与集群 IP 相同的方式处理。",
    "overview.load_balancer": "它的负载均衡 IP {addr} 也在本节点上处理（允许的源地址范围：{ranges}）。",
    "overview.health_check": "{port} 是它的健康检查节点端口：云负载均衡器通过它询问本节点是否有本地端点。",
    "overview.endpoint": "端点 {ep} 经由链 {chain} 承接 {share} 的新连接（{pct}）。",
    "overview.endpoint_pod": "端点 {ep}（节点 {node} 上的 Pod {pod}）经由链 {chain} 承接 {share} 的新连接（{pct}）。",
    "overview.endpoint_unknown": "链 {chain} 承接 {share} 的新连接（{pct}），但输入中没有这条链，所以它的端点未知。",
    "overview.no_endpoints": "它没有可用的端点：规则对新连接的回应是 {verdict}。",
    "chain.builtin.nat.PREROUTING": "nat 表的 PREROUTING 链：每个到达本节点的数据包（来自 Pod 的虚拟网卡或来自网络）"
                                    "在路由之前都会经过这里；kube-proxy 在这里挂接了它的 KUBE-SERVICES 链。",
    "chain.builtin.nat.OUTPUT": "nat 表的 OUTPUT 链：作用相同，但针对本节点上的程序（包括 hostNetwork 的 Pod）"
                                "发出的数据包。",
    "chain.builtin.nat.POSTROUTING": "nat 表的 POSTROUTING 链：数据包离开前的最后一个挂接点；kube-proxy 在这里"
                                     "对它做过标记的数据包进行地址伪装（MASQUERADE）。",
    "chain.builtin.filter.FORWARD": "filter 表的 FORWARD 链：经本节点转发的数据包（例如发往某个 Pod）会经过这里；"
                                    "kube-proxy 的 filter 链挂接在这里。",
    "chain.builtin.filter.INPUT": "filter 表的 INPUT 链：发给本节点自身的数据包会经过这里。",
    "chain.builtin.filter.OUTPUT": "filter 表的 OUTPUT 链：本节点上的程序发出的数据包会经过这里。",
    "chain.nat.services": "KUBE-SERVICES（nat 表）是分发器：每个 Service 的地址和端口各有一条规则，"
                          "把数据包交给该 Service 自己的链；最后一条规则把发往本节点自身地址的数据包交给 "
                          "KUBE-NODEPORTS。",
    "chain.nat.nodeports": "KUBE-NODEPORTS（nat 表）中每个节点端口对应一条规则。",
    "chain.svc": "{chain} 是这个 Service 端口自己的链（Cluster 策略）：先给来自 Pod 网络之外的流量打上伪装标记，"
                 "再从 {n} 个端点中随机选一个。",
    "chain.svc_plain": "{chain} 是这个 Service 端口自己的链（Cluster 策略）：从 {n} 个端点中随机选一个。",
    "chain.svl": "{chain} 是 Local 策略的链：只在本节点上的端点中选择。",
    "chain.ext": "{chain} 处理不是经集群 IP 进来的流量（节点端口、外部 IP 或负载均衡 IP）：先决定是否伪装，"
                 "再交给端点选择。",
    "chain.fw": "{chain} 检查 loadBalancerSourceRanges：允许的源地址继续往下走，其余的从链尾落出。",
    "chain.xlb": "{chain} 是 1.24 之前用于 externalTrafficPolicy: Local 的链。",
    "chain.sep": "{n} 条 KUBE-SEP 链（{chains}）每个端点一条：各自把目的地址改写为自己的端点（DNAT），"
                 "并给访问自己的 Pod 打上伪装标记（hairpin，回环访问）。",
    "chain.nat.mark-masq": "KUBE-MARK-MASQ（nat 表）只做一件事：把数据包标记（mark）的 0x4000 位置 1，"
                           "意思是“离开时请给我做地址伪装”。",
    "chain.nat.postrouting": "KUBE-POSTROUTING（nat 表）对带有 0x4000 标记的数据包做地址伪装，其他数据包原样放行。",
    "chain.filter.services": "KUBE-SERVICES（filter 表）拒绝或丢弃发往没有（本地）端点的 Service 的连接。",
    "chain.filter.external-services": "KUBE-EXTERNAL-SERVICES（filter 表）对节点端口、外部 IP 和负载均衡 IP "
                                      "做同样的事。",
    "chain.filter.nodeports": "KUBE-NODEPORTS（filter 表）放行健康检查节点端口。",
    "chain.filter.forward": "KUBE-FORWARD（filter 表）丢弃无效的数据包，放行 kube-proxy 标记过的转发流量"
                            "以及已知连接的回包。",
    "chain.filter.proxy-firewall": "KUBE-PROXY-FIREWALL（filter 表）丢弃 loadBalancerSourceRanges 不允许的"
                                   "源地址发往负载均衡 IP 的流量。",
    "chain.filter.firewall": "KUBE-FIREWALL（filter 表）丢弃从别处发往 127.0.0.0/8 的数据包，"
                             "保证 localhost 节点端口只能在本机使用。",
    "chain.other": "{chain}（{table} 表）也在路径上。",
    "way.start.prerouting": "一个从 {src} 发往 {dst} 的 {proto} 数据包到达本节点。",
    "way.start.output": "本节点上的一个程序发出一个从 {src} 到 {dst} 的 {proto} 数据包。",
    "step.hook.PREROUTING": "nat 表的 PREROUTING 链把它交给 {target}，每个数据包都是如此。",
    "step.hook.OUTPUT": "nat 表的 OUTPUT 链把它交给 {target}，本节点发出的每个数据包都是如此。",
    "step.no_dispatch": "nat 表 KUBE-SERVICES 中没有规则匹配 {dst}/{proto}：kube-proxy 没有为它写任何链"
                        "（没有端点的 Service 就没有这些链），所以目的地址不会被改写。",
    "step.hook_assumed": "输入中没有 nat 表 {chain} 链跳转到 {target} 的规则（kube-proxy 的 restore 输入，或规则片段）："
                         "svcinspect 假定存在 kube-proxy 的标准挂接规则，在真实节点上它会把每个数据包都交给那里。",
    "step.dispatch": "在 KUBE-SERVICES 中，这条规则匹配目的地址 {dst}/{proto}，跳转到 {target}。",
    "step.to_nodeports": "没有哪个 Service 地址匹配 {dst}，但它是本节点自己的地址，所以 KUBE-SERVICES 的最后一条"
                         "规则跳转到 KUBE-NODEPORTS。",
    "step.nodeport": "在 KUBE-NODEPORTS 中，目的端口 {port} 匹配这个 Service 的规则，跳转到 {target}。",
    "step.nodeport_localhost": "在 KUBE-NODEPORTS 中，发往 127.0.0.0/8 的目的端口 {port} 匹配 localhost 专用的规则，"
                               "跳转到 {target}。",
    "step.fw_allowed": "源地址 {src} 在允许的范围内，所以接下来进入 {target}。",
    "step.ext_pod_shortcut": "数据包来自 Pod，所以 {chain} 把它交给 {target}，在整个集群范围内选择端点"
                             "（externalTrafficPolicy: Local 只作用于来自外部的流量）。",
    "step.ext_local_shortcut": "数据包来自本节点，所以 {chain} 把它交给 {target}，在整个集群范围内选择端点。",
    "step.ext_to_svc": "随后 {chain} 把数据包交给 {target}，在整个集群范围内选择端点。",
    "step.ext_to_svl": "随后 {chain} 把数据包交给 {target}，只在本节点的端点中选择。",
    "masq.off_cluster": "源地址 {src} 不在 Pod 网络 {cidr} 之内，所以这条规则给数据包打上伪装标记。"
                        "端点的回包必须经过本节点返回，因为连接的 NAT 状态保存在这里；"
                        "而 Pod 网络之外的源地址，回包可能走另一条路径。",
    "masq.hairpin": "源地址 {src} 就是这个端点本身（Pod 访问自己所属的 Service），所以数据包被打上伪装标记；"
                    "否则这个 Pod 会收到一个来自自己地址的回包。",
    "masq.local_source": "源地址 {src} 是本节点自己的地址，所以数据包被打上伪装标记。",
    "masq.external": "经这条路进来的每个数据包都会被打上伪装标记（externalTrafficPolicy: Cluster）："
                     "端点可能在另一个节点上，它的回包必须经过本节点返回，因为 NAT 状态保存在这里。"
                     "代价是端点看不到客户端的真实地址。",
    "masq.other": "{chain} 给数据包打上伪装标记。",
    "step.mark": "{action}。",
    "split.one": "{chain} 只有一个端点：总是跳转到 {sep}，也就是 {ep}。",
    "split.intro": "{chain} 逐条规则随机选择端点（第 {lines} 行）；每条规则从前面规则剩下的部分中取走自己的一份：",
    "split.first": "第 {line} 行：以概率 {p} 跳转到 {sep}：{ep} 得到 {share}（{pct}）。",
    "split.next": "第 {line} 行：在剩下的 {rest} 中，以概率 {p} 跳转到 {sep}：{ep} 得到 {share}（{pct}）。",
    "split.last": "第 {line} 行：剩下的 {rest} 无条件跳转到 {sep}：{ep} 得到 {share}（{pct}）。",
    "split.affinity": "开启会话亲和性后，同一客户端在 {seconds} 秒内的后续连接跳过这次抽签，直接去往它第一次分到的端点。",
    "step.dnat": "假设选中了 {chain}：这条链把目的地址 {before} 改写为 {after}（DNAT）。"
                 "从这里开始，后面的每张表看到的都是端点的地址。",
    "step.dnat_others": "其余 {n} 条端点链也一样，只是改写成各自的地址。",
    "step.masquerade": "源地址 {src} 被改写为 {snat}。",
    "step.reject": "{chain} 拒绝这个连接。",
    "step.drop": "{chain} 丢弃这个数据包。",
    "step.generic": "{table} 表 {chain}：{action}。",
    "filter.accept_marked": "在 filter 表的 {hook} 链中，{chain} 因为数据包带有 kube-proxy 的标记而放行它。",
    "filter.accept": "在 filter 表的 {hook} 链中，{chain} 放行这个数据包。",
    "filter.reject": "在 filter 表的 {hook} 链中，{chain} 拒绝它。",
    "filter.drop": "在 filter 表的 {hook} 链中，{chain} 丢弃它。",
    "filter.pass": "在 filter 表的 {hook} 链中，kube-proxy 的链里没有规则阻止发往 {dst} 的连接，"
                   "所以按链的默认策略放行。",
    "post.masq": "在 nat 表的 POSTROUTING 链中，KUBE-POSTROUTING 看到标记，先清除它，再做地址伪装："
                 "源地址 {src} 变成 {snat}，也就是本节点自己的地址。",
    "post.masq_same": "在 nat 表的 POSTROUTING 链中，KUBE-POSTROUTING 看到标记，先清除它，再做地址伪装："
                      "源地址改为数据包出口网卡的地址，这里就是 {snat}，与原来相同。",
    "post.no_mark": "在 nat 表的 POSTROUTING 链中，因为数据包没有标记，KUBE-POSTROUTING 立即返回：源地址 {src} 保持不变。",
    "post.other": "nat 表的 POSTROUTING 链不改动这个数据包。",
    "localhost.route_localnet": "内核通常不允许把源地址为 127.0.0.1 的数据包路由到别处；kube-proxy 为 localhost "
                                "节点端口设置了 net.ipv4.conf.all.route_localnet=1（这是内核参数，不在规则里），"
                                "而下面的地址伪装会给数据包换上一个端点能够回复的源地址。",
    "localhost.firewall": "只有本节点才能使用 127.0.0.1:端口：这条规则丢弃源地址不是回环地址、发往 127.0.0.0/8、"
                          "且不属于已知连接（或已做 DNAT 的连接）的数据包，所以其他主机无法访问它。",
    "result.dnat_kept": "因此连接到达选中的端点（共 {n} 个可能），源地址 {src} 保持不变：端点看到的是客户端的真实地址。",
    "result.dnat_masq": "因此连接以 {src_after} 为源地址到达选中的端点（共 {n} 个可能）：端点看到的是本节点的地址，而不是 {src}。",
    "result.dnat_masq_same": "因此连接以本节点的地址 {src_after} 为源地址到达选中的端点（共 {n} 个可能）。",
    "result.masq_differs": "是否做地址伪装取决于选中的端点（详见 trace）。",
    "reply.kept": "回包发往 {src}，它是本节点上的 Pod，所以回包会经过本节点，conntrack 在这里撤销 DNAT："
                  "客户端看到的回复来自 {orig}。",
    "reply.kept_direct": "端点直接回复给 {src}；这个回包必须经过本节点，conntrack 在这里撤销 DNAT，"
                         "客户端才会看到来自 {orig} 的回复（Local 策略下端点就在本节点上，所以回包一定经过这里）。",
    "reply.masq": "端点回复给 {snat}；本节点的 conntrack 把两次改写都撤销，所以客户端 {src} 看到的回复来自 {orig}。",
    "reply.localhost": "端点回复给 {snat}；conntrack 撤销两次改写，把回复交给程序，看起来来自 {orig}。",
    "result.reject": "以概率 {p}，连接被拒绝（客户端立即收到错误）。",
    "result.drop": "以概率 {p}，数据包被丢弃（客户端一直等待直到超时）。",
    "result.reject_always": "因此连接被拒绝：客户端立即收到错误。",
    "result.drop_always": "因此数据包被丢弃：客户端一直等待直到超时。",
    "result.none_always": "没有任何 kube-proxy 规则处理这个数据包：它不是 Service 连接。",
    "result.none": "以概率 {p}，没有任何 kube-proxy 规则处理这个数据包：它不是 Service 连接。",
    "result.condition": "这取决于输入中没有给出的信息：{text}。",
    "change.affinity_on": "会话亲和性（ClientIP，{seconds} 秒）已开启：这些规则在随机选择之前，"
                          "把最近连接过的客户端直接送回它原来的端点。",
    "change.affinity_off": "会话亲和性未开启。如果设置 sessionAffinity: ClientIP，kube-proxy 会在随机选择之前"
                           "为每个端点加一条 '-m recent --rcheck' 规则，并在每个端点的 DNAT 规则上加 '--set'，"
                           "让客户端始终连到同一个端点。",
    "change.external_local": "externalTrafficPolicy（或 internalTrafficPolicy）为 Local：{chain} 只在本节点的 "
                             "{n} 个端点中选择，外部流量保留源地址；没有本地端点时，本节点会丢弃它。",
    "change.internal_local": "internalTrafficPolicy 为 Local：{chain} 只在本节点的 {n} 个端点中选择。",
    "change.external_cluster": "externalTrafficPolicy 为 Cluster（这条规则对所有来自外部的流量做伪装）。"
                               "如果改为 Local，kube-proxy 会增加一条只含本节点端点的 KUBE-SVL 链，"
                               "不再伪装外部流量，并在没有本地端点的节点上丢弃这些流量。",
    "change.internal_cluster": "流量策略为 Cluster：集群中的每个端点都可能被选中。如果设置 "
                               "internalTrafficPolicy: Local，则只会选择本节点上的端点。",
    "change.no_endpoints": "如果这个 Service 失去了所有端点，kube-proxy 会删除这些链，改为拒绝新连接，"
                           "就像这里对另一个 Service 所做的那样：",
    "change.no_endpoints_general": "如果这个 Service 失去了所有端点，kube-proxy 会删除这些链，改为在 filter 表中"
                                   "拒绝新连接。",
    "cite": "{table} 表 {chain} 链，第 {line} 行",
    "cite.noline": "{table} 表 {chain} 链",
    "cite.general": "kube-proxy 或内核的行为：输入的规则中看不到",
    "cite.assumed": "假定的 {table} 表 {chain} 链挂接规则，输入中没有",
    "warnings": "警告：",
    "nft.set.cluster-ips": "@cluster-ips（集合）包含本地址族的所有集群 IP；kube-proxy 用它给从 Pod 网络之外访问集群 IP 的流量打上伪装标记。",
    "nft.set.nodeport-ips": "@nodeport-ips（集合）包含节点端口生效的节点地址（--nodeport-addresses，默认是节点 IP）。",
    "nft.set.service-ips": "@service-ips（判决映射）是分发器：每个 Service 地址、协议和端口一个元素，各自转到该 Service 端口的链。",
    "nft.set.service-nodeports": "@service-nodeports（判决映射）每个节点端口（协议 . 端口）一个元素，各自转到该 Service 端口的 external 链。",
    "nft.set.no-endpoint-services": "@no-endpoint-services（判决映射）拒绝或丢弃发往没有（本地）端点的 Service 地址的连接。",
    "nft.set.no-endpoint-nodeports": "@no-endpoint-nodeports（判决映射）对节点端口做同样的事。",
    "nft.set.firewall-ips": "@firewall-ips（判决映射）把设置了 loadBalancerSourceRanges 的负载均衡 IP 转到它们的 firewall 链。",
    "nft.set.hairpin-connections": "@hairpin-connections（集合）列出端点访问自身的地址对；masquerading 链对经由自身 Service 访问自己的 Pod 做伪装。",
    "nft.set.affinity": "{chain}（集合）带超时地记住访问过某个端点的客户端：会话亲和性。",
    "nft.chain.hook": "{chain} 是基础链：kube-proxy 把它挂在内核的 {type} {hook} 钩子上，优先级 {priority}，并从这里跳转到自己的链。",
    "nft.chain.services": "services（nat）在 @service-ips 中查找数据包（目标地址、协议和端口），对于 @nodeport-ips 中的节点自身地址则在 "
                          "@service-nodeports 中查找，然后转到找到的 Service 端口的链。",
    "nft.chain.service": "{chain} 是这个 Service 端口自己的链（集群策略）：它给来自 Pod 网络之外的流量打上伪装标记，并在 {n} 个端点中挑选一个。",
    "nft.chain.local": "{chain} 是本地策略链：它只在本节点上的端点中挑选。",
    "nft.chain.external": "{chain} 处理不是经由集群 IP 到达的流量（节点端口、外部 IP 或负载均衡 IP），并执行 externalTrafficPolicy。",
    "nft.chain.endpoint": "{chain} 是单个端点的链：它把目标地址改写为该端点（有亲和性时还会记住客户端）。",
    "nft.chain.firewall": "{chain} 检查 loadBalancerSourceRanges：范围之外的源地址被丢弃。",
    "nft.chain.masquerading": "masquerading（nat）对带有 kube-proxy 标记 0x4000 的数据包（以及回环连接）做伪装，并清除标记。",
    "nft.chain.mark-for-masquerade": "mark-for-masquerade（nat）只设置数据包标记的 0x4000 位：“稍后给我做伪装”。",
    "nft.chain.firewall-check": "firewall-check（filter）在 DNAT 之前把负载均衡流量送到 @firewall-ips。",
    "nft.chain.cluster-ips-check": "cluster-ips-check（filter）拒绝发往集群 IP 上 Service 没有的端口的连接，并丢弃发往未分配的 Service 网段地址的流量。",
    "nft.chain.service-endpoints-check": "service-endpoints-check（filter）让发往 Service 地址的新连接经过 @no-endpoint-services。",
    "nft.chain.nodeport-endpoints-check": "nodeport-endpoints-check（filter）让发往节点端口的新连接经过 @no-endpoint-nodeports。",
    "nft.chain.endpoints-check": "endpoints-check（filter）拒绝或丢弃发往没有端点的 Service "
                                 "端口的新连接（@no-endpoint-services、@no-endpoint-nodeports）。",
    "nft.chain.reject-chain": "reject-chain（filter）拒绝连接，客户端立即得到错误。",
    "nft.chain.nodeports": "nodeports（nat）通过 @service-nodeports 分发节点端口。",
    "nft.step.hook": "{chain}（nat 的 {hook} 钩子）把它送到 {target}，对每个数据包都是如此。",
    "nft.step.no_dispatch": "@service-ips 和 @service-nodeports 中没有元素匹配 {dst}/{proto}：kube-proxy "
                            "在这里没有为它写任何规则，所以在这些规则里它不是 Service 连接。",
    "nft.step.dispatch": "在 services 中，@service-ips 有目标 {dst}/{proto} 的元素：它转到 {target}。",
    "nft.step.nodeport": "目标 {dst} 在 @nodeport-ips 中，所以 services 在 @service-nodeports 中查找 {proto} 端口 {port}：它转到 "
                         "{target}。",
    "nft.step.no_endpoints": "这个 Service 端口没有端点：无端点映射把 {dst}/{proto} 送到 {target}。",
    "nft.step.affinity_hit": "如果这个客户端在 {chain} 的亲和性集合中（最近连接过），它直接回到 {target}。",
    "nft.step.dnat": "假设抽到 {after}：{chain} 把目标 {before} 改写为 {after}（DNAT）。此后每条链看到的都是端点的地址。",
    "nft.step.elements": "规则查找了这些元素。",
    "nft.filter.pass": "在 {base}（{hook} 钩子）中，kube-proxy 的检查（{checks}）对发往 {dst} 的新连接没有限制，所以它继续前进。",
    "nft.post.masq": "在 nat-postrouting 中，masquerading 链看到标记，清除它并做伪装：源地址 {src} 变为本节点自己的地址 {snat}。",
    "nft.post.masq_same": "在 nat-postrouting 中，masquerading 链看到标记，清除它并做伪装：源地址变为数据包离开时所经接口的地址，这里是 {snat}，本来就是它。",
    "nft.post.no_mark": "在 nat-postrouting 中，masquerading 链不改动这个数据包，因为它没有标记：源地址 {src} 保持不变。",
    "nft.split.one": "{chain} 只有一个端点 {ep}：每个新连接都去那里。",
    "nft.split.intro": "{chain} 用 numgen random mod {mod} 在 {n} 个端点中挑选一个：抽到的每个数字都是这条规则中映射的一个元素，所以每个端点恰好得到其元素所占的份额：",
    "nft.split.share": "{ep} 得到 {share}（{pct}）。",
    "nft.change.affinity_off": "会话亲和性是关闭的。若设置 sessionAffinity: ClientIP，kube-proxy "
                               "会为每个端点添加一个亲和性集合（带超时）、一条在随机选择之前把集合中的客户端直接送到该端点的规则，并在每个端点的链中 'update' 该集合，让客户端保持同一个端点。",
    "nft.change.no_endpoints": "如果这个 Service 失去了所有端点，kube-proxy 会删除它的 service- 链，把它的地址放进 "
                               "@no-endpoint-services，新连接会被立即拒绝，就像这里对另一个 Service 所做的那样：",
    "nft.filter.reject": "在 {base}（{hook} 钩子）中，{chain} 拒绝它（经由 {checks} 到达）。",
    "nft.filter.drop": "在 {base}（{hook} 钩子）中，{chain} 丢弃它（经由 {checks} 到达）。",
    "nft.filter.accept": "在 {base}（{hook} 钩子）中，{chain} 接受它（经由 {checks} 到达）。",
    "nft.step.no_dispatch_no_endpoints": "这个 Service 端口没有端点，所以 @service-ips 和 @service-nodeports 中没有 {dst}/{proto} "
                                         "的元素：nat 不改动数据包，由 kube-proxy 的 filter 链决定。",
    "nft.step.affinity_update": "{chain} 把客户端 {src} 记入它的亲和性集合（{seconds} 秒），之后它的连接会回到这个端点。",
    "localhost.not_served": "kube-proxy 的 {mode} 模式不在 127.0.0.1 上提供节点端口（它既不设置 route_localnet，也不匹配回环目标地址），"
                            "所以没有规则改写这个数据包。",
    "nft.change.no_endpoints_general": "如果这个 Service 失去了所有端点，kube-proxy 会删除它的 service- 链，把它的地址放进 "
                                       "@no-endpoint-services，新连接会被立即拒绝。",
    "nft.change.external_cluster": "externalTrafficPolicy 为 Cluster（这条规则对所有来自外部的流量做伪装）。如果改为 Local，kube-proxy "
                                   "会增加一条只含本节点端点的 local- 链，不再伪装外部流量，并在没有本地端点的节点上丢弃这些流量。",
}

CATALOGS = {"en": EN, "zh": ZH}


def message(key: str, args, lang: str = "en") -> str:
    """The text of one message; an unknown key falls back to English, then to the key."""
    cat = CATALOGS.get(lang, EN)
    template = cat.get(key) or EN.get(key)
    if template is None:
        if key.startswith("chain."):
            template = cat["chain.other"]
        else:
            return key + " " + " ".join(f"{k}={v}" for k, v in dict(args).items())
    args = dict(args)
    if lang == "zh":  # lists read with the Chinese enumeration comma
        for k in ("lines", "chains", "ranges"):
            if k in args:
                args[k] = args[k].replace(", ", "、")
    return template.format_map(_Args(args))


class _Args(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def sentence_text(s: Sentence, lang: str = "en") -> str:
    return message(s.key, s.args, lang)


def section_title(sec: Section, lang: str = "en") -> str:
    if sec.key == "section.way":
        a = sec.args
        return message(f"client.{a.get('client', 'other')}", a, lang) + (" " if lang == "en" else "") + \
            message(f"entry.{a.get('entry', '')}", a, lang)
    return message(sec.key, sec.args, lang)


def cite_text(c: Citation, lang: str = "en", with_source: bool = False) -> str:
    """``nat KUBE-SERVICES, line 309``; ``with_source`` (several input files)
    prefixes the file's name."""
    args = {"table": c.table, "chain": c.chain, "line": str(c.line)}
    if c.source.startswith("<assumed"):
        return message("cite.assumed", args, lang)
    text = message("cite" if c.line else "cite.noline", args, lang)
    if with_source and c.source:
        text = f"{c.source.rsplit('/', 1)[-1]}: {text}"
    return text


def _several_sources(expl: Explanation) -> bool:
    return len({c.source for pe in expl.ports for sec in pe.sections for s in sec.sentences for c in s.cites
                if c.source and not c.source.startswith("<")}) > 1


_SUB = {"split.first", "split.next", "split.last"}


def render_explanation(expl: Explanation, lang: str = "en", show_rules: bool = False, width: int = 100) -> str:
    """Sections with bullets; after each sentence, in brackets, the rules it cites
    (with ``show_rules``, each rule's full text on its own line below)."""
    out: list[str] = []
    wrap = lang == "en"
    several = _several_sources(expl)
    for pe in expl.ports:
        fam = "" if pe.family == 4 else " (IPv6)"
        head = f"{pe.name}{fam}"
        out += [head, "=" * len(head)]
        for sec in pe.sections:
            out += ["", section_title(sec, lang)]
            for s in sec.sentences:
                text = sentence_text(s, lang)
                if s.cites:
                    sep = "；" if lang == "zh" else "; "
                    text += " [" + sep.join(cite_text(c, lang, several) for c in s.cites) + "]"
                elif s.general:
                    text += " [" + message("cite.general", {}, lang) + "]"
                sub = s.key in _SUB
                first, rest = ("      * ", "        ") if sub else ("  - ", "    ")
                if wrap:
                    out.append(textwrap.fill(text, width=width, initial_indent=first, subsequent_indent=rest,
                                             break_on_hyphens=False, break_long_words=False))
                else:
                    out.append(first + text)
                if show_rules:
                    for c in s.cites:
                        out.append(f"{rest}  {c.rule}")
        out.append("")
    if expl.warnings:
        out.append(message("warnings", {}, lang))
        out += [f"  {w}" for w in expl.warnings]
    return "\n".join(out).rstrip() + "\n"


def explanation_json(expl: Explanation, lang: str = "en") -> dict:
    """The explanation as data: every sentence with its key, arguments, text in
    ``lang`` and citations (each rule's full text is always included)."""
    return {
        "query": expl.query,
        "lang": lang,
        "ports": [{
            "service_port": pe.name,
            "family": pe.family,
            "protocol": pe.protocol,
            "sections": [{
                "key": sec.key,
                "title": section_title(sec, lang),
                "args": dict(sec.args),
                "sentences": [{
                    "key": s.key,
                    "text": sentence_text(s, lang),
                    "args": dict(s.args),
                    "general": s.general,
                    "cites": [{"table": c.table, "chain": c.chain, "line": c.line, "rule": c.rule,
                               "source": c.source} for c in s.cites],
                } for s in sec.sentences],
            } for sec in pe.sections],
        } for pe in expl.ports],
        "warnings": list(expl.warnings),
    }
