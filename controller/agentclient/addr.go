package agentclient

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Addr is an agent address; ParseAddr reads its text form.
type Addr = snapshot.AgentAddr

// ParseAddr parses unix:/path, vsock:CID:PORT or serial:/path.
func ParseAddr(s string) (Addr, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	bad := func(why string) (Addr, error) {
		return Addr{}, fmt.Errorf("agent address %q: %s (want unix:/path, vsock:CID:PORT or serial:/path/to/channel.sock)", s, why)
	}
	if !ok || rest == "" {
		return bad("no scheme")
	}
	switch scheme {
	case "unix", "serial":
		if !strings.HasPrefix(rest, "/") {
			return bad("the socket path must be absolute")
		}
		return Addr{Scheme: scheme, Path: rest}, nil
	case "vsock":
		cs, ps, ok := strings.Cut(rest, ":")
		if !ok {
			return bad("vsock needs CID:PORT")
		}
		cid, err := strconv.ParseUint(cs, 10, 32)
		if err != nil {
			return bad("CID is not a number")
		}
		if cid < 3 || cid == 0xffffffff {
			return bad("CID must be a guest's (3..4294967294): 0-2 are the hypervisor, local and host")
		}
		port, err := strconv.ParseUint(ps, 10, 32)
		if err != nil || port == 0 {
			return bad("PORT must be a number 1..4294967295")
		}
		return Addr{Scheme: "vsock", CID: uint32(cid), Port: uint32(port)}, nil
	}
	return bad("unknown scheme " + strconv.Quote(scheme))
}

// checkAddr rejects what ParseAddr would: DialAddr gets addresses built in code, and an
// unchecked zero value must not reach the vsock dialer.
func checkAddr(a Addr) error {
	switch a.Scheme {
	case "unix", "serial":
		if strings.HasPrefix(a.Path, "/") {
			return nil
		}
		return fmt.Errorf("agent address %s: the socket path must be absolute", a)
	case "vsock":
		if a.CID < 3 || a.CID == 0xffffffff || a.Port == 0 {
			return fmt.Errorf("agent address %s: CID must be a guest's (3..4294967294) and PORT 1..4294967295", a)
		}
		return nil
	}
	return fmt.Errorf("agent address %q: unknown scheme %q", a.String(), a.Scheme)
}
