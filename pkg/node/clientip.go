package node

import (
	"fmt"
	"net/netip"
	"strings"
)

// proxies is the --trusted-proxies list: the load balancers and ingress
// controllers whose X-Forwarded-For a node believes. Behind one, every TCP
// peer is the proxy, so without it the per-IP limits would count the
// proxy, and the auth hook and lifecycle events would name it.
type proxies []netip.Prefix

// parseProxies reads CIDRs ("10.0.0.0/8") and single addresses.
func parseProxies(list []string) (proxies, error) {
	var p proxies
	for _, s := range list {
		if pre, err := netip.ParsePrefix(s); err == nil {
			p = append(p, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither an address nor a CIDR like 10.0.0.0/8", s)
		}
		a = a.Unmap()
		p = append(p, netip.PrefixFrom(a, a.BitLen()))
	}
	return p, nil
}

func (p proxies) trusts(a netip.Addr) bool {
	for _, pre := range p {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// client returns the address of the client behind peer, the TCP peer's
// address. Only a trusted peer's headers count. X-Forwarded-For is read
// from the right, skipping trusted hops, because every proxy appends
// the address it saw and only the part our proxies wrote is true: the
// first untrusted address is the client, whatever the client put to the
// left of it. With no X-Forwarded-For, X-Real-Ip (nginx's habit) counts.
// Anything unreadable leaves the peer as the answer.
func (p proxies) client(peer netip.Addr, header func(string) string) netip.Addr {
	peer = peer.Unmap()
	if len(p) == 0 || !p.trusts(peer) {
		return peer
	}
	xff := header("X-Forwarded-For")
	if xff == "" {
		if a, ok := parseHop(header("X-Real-Ip")); ok {
			return a
		}
		return peer
	}
	client := peer
	for xff != "" {
		var hop string
		if i := strings.LastIndexByte(xff, ','); i >= 0 {
			hop, xff = xff[i+1:], xff[:i]
		} else {
			hop, xff = xff, ""
		}
		a, ok := parseHop(hop)
		if !ok {
			break
		}
		client = a
		if !p.trusts(a) {
			break
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For entry: an address, maybe with a
// port, maybe an IPv6 one in brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
