// Package checks runs RunChecks: connectivity checks from inside the guest with targets chosen by
// the caller: PING (ICMP echo; unprivileged datagram socket, raw socket as root as the fallback;
// an empty target pings the family's default gateway), DNS (a lookup through the guest's resolver,
// A or AAAA only when a family is given), TCP connect and HTTP GET. Each check has its own deadline,
// reports its latency in microseconds, and runs over IPv4 or IPv6 separately when asked, so "ping
// works, HTTP fails" and "IPv6 hangs" look different. Requests are validated first (at most 64
// checks, timeouts 1..30000 ms, target syntax per kind); nothing runs when one is invalid.
//
// It must never import NetworkManager, file-writing or gRPC server code; routes come through the
// RouteSource interface (agent/link implements it).
package checks
