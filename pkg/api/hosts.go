package api

import (
	"net"
	"net/http"
	"strings"
)

// LoopbackHost says whether host, a request's Host (a name or an address,
// with or without a port), names this machine's loopback: localhost,
// 127.0.0.1 or [::1].
func LoopbackHost(host string) bool {
	h := host
	if hh, port, err := net.SplitHostPort(host); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return false
		}
		h = hh
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		h = host[1 : len(host)-1]
	}
	switch strings.ToLower(h) {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// notLoopback answers a request that named another host while no keys are
// configured.
func notLoopback() error {
	return &problemError{Problem{Type: "about:blank", Title: "misdirected request", Status: http.StatusMisdirectedRequest,
		Detail: "authentication is off (no API keys), so the API answers only requests addressed to localhost, 127.0.0.1 or [::1]; configure API keys to reach it by another name"}}
}
