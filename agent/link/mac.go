package link

import (
	"errors"
	"fmt"
	"net"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// ErrNotFound is wrapped when no interface has the requested MAC.
var ErrNotFound = errors.New("no interface with that MAC")

// NormalizeMAC validates a 6-byte Ethernet MAC ("52:54:00:AB:CD:EF", "52-54-00-ab-cd-ef") and returns
// it lower case and colon separated.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("invalid MAC address %q: want six hex bytes like 52:54:00:12:34:56", s)
	}
	return hw.String(), nil
}

// FindByMAC returns the interface of ifaces whose MAC is mac (any case or separator). The error
// wraps ErrNotFound and lists the MACs that exist when there is none.
func FindByMAC(ifaces []*kvmnetv1.Interface, mac string) (*kvmnetv1.Interface, error) {
	want, err := NormalizeMAC(mac)
	if err != nil {
		return nil, err
	}
	var seen []string
	for _, in := range ifaces {
		if in.GetMac() == want {
			return in, nil
		}
		seen = append(seen, in.GetName()+"="+in.GetMac())
	}
	return nil, fmt.Errorf("%w: %s (guest has: %s); check the MAC in the domain XML (virsh domiflist)",
		ErrNotFound, want, strings.Join(seen, " "))
}
