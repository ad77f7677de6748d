package loop

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/frame"
)

// httpHandler serves what net/http receives: requests on connections whose
// first request was not an upgrade. A load balancer keeping connections to
// the node alive (nginx's upstream keepalive) sends later requests on the
// same connection, upgrades included; those must still become WebSockets,
// so an upgrade path goes to upgradeHTTP instead of opts.HTTP.
func (l *Loop) httpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && l.opts.IsUpgradePath(r.URL.Path) {
			l.upgradeHTTP(w, r)
			return
		}
		l.opts.HTTP.ServeHTTP(w, r)
	})
}

// upgradeHTTP is handshake's counterpart for a request net/http has
// already parsed: the same Upgrade decision, then the same adoption.
func (l *Loop) upgradeHTTP(w http.ResponseWriter, r *http.Request) {
	req := Request{Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host,
		Origin: r.Header.Get("Origin"), Header: make(map[string]string, len(r.Header))}
	if len(r.Header) > 64 {
		l.refuse(w, &Rejection{Status: 431, Body: []byte(`{"error":{"code":"bad_request","message":"too many headers"}}`), Reason: "bad_request"})
		return
	}
	for k, vs := range r.Header { // net/http's keys are canonical, like ours
		sep := ", "
		if k == "Cookie" {
			sep = "; "
		}
		req.Header[k] = strings.Join(vs, sep)
	}
	req.Remote, _ = netip.ParseAddrPort(r.RemoteAddr)
	req.TLS = r.Context().Value(tlsMark{}) != nil
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		// Not a WebSocket request on a WebSocket path: gobwas answers
		// 400 with what is missing.
		l.metrics.Refused.WithLabelValues("bad_request").Inc()
		_, _, _, _ = ws.HTTPUpgrader{}.Upgrade(r, w)
		return
	}
	handler, reject := l.opts.Upgrade(&req)
	if reject != nil {
		l.refuse(w, reject)
		return
	}
	var deflate frame.Negotiator
	u := ws.HTTPUpgrader{}
	if l.opts.Compression {
		u.Negotiate = deflate.Negotiate
	}
	nc, brw, _, err := u.Upgrade(r, w)
	if err != nil {
		l.metrics.Refused.WithLabelValues("bad_request").Inc()
		l.log.Debug("upgrade failed", "remote", req.Remote, "err", err)
		if nc != nil {
			nc.Close()
		}
		return
	}
	raw := nc
	pc, _ := nc.(*peekedConn)
	if pc != nil {
		raw = pc.Conn
	}
	if brw.Reader.Buffered() > 0 || pc != nil && pc.r.Buffered() > 0 {
		// Frames sent before the 101: a client must wait for it.
		l.log.Debug("upgrade: client sent data before the 101; closing", "remote", req.Remote)
		raw.Close()
		return
	}
	l.start(raw, handler, req.Remote, l.opts.Compression && deflate.Accepted())
}

// refuse answers an upgrade that Upgrade (or a check before it) refused,
// with the JSON body the handshake path writes too.
func (l *Loop) refuse(w http.ResponseWriter, r *Rejection) {
	l.metrics.Refused.WithLabelValues(r.Reason).Inc()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if r.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(r.RetryAfter))
	}
	w.WriteHeader(r.Status)
	_, _ = w.Write(r.Body)
}

// tlsMark marks the context of a TLS connection's requests. net/http sets
// r.TLS only for a *tls.Conn, and it serves our peekedConn.
type tlsMark struct{}

func withTLSMark(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*peekedConn); ok {
		if _, ok := pc.Conn.(*tls.Conn); ok {
			return context.WithValue(ctx, tlsMark{}, true)
		}
	}
	return ctx
}
