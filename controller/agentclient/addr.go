package agentclient

import (
	"fmt"
	"strconv"
	"strings"
)

// Addr is a parsed agent address.
type Addr struct {
	// Scheme is "unix", "vsock" or "serial".
	Scheme string
	// Path is the unix socket (unix, serial).
	Path string
	// CID and Port are the vsock context id of the guest and the agent's port.
	CID, Port uint32
}

// String formats the address the way ParseAddr reads it.
func (a Addr) String() string {
	if a.Scheme == "vsock" {
		return fmt.Sprintf("vsock:%d:%d", a.CID, a.Port)
	}
	return a.Scheme + ":" + a.Path
}

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
