package hostnet

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// BridgeNetfilter reads the bridge-nf-call-* sysctls of the Reader's namespace (each namespace has
// its own since Linux 5.3). Absent keys mean br_netfilter is not loaded: bridged frames then never
// reach the IP hooks, which is reported as Loaded=false, not as an error.
func (r *Reader) BridgeNetfilter() (snapshot.BridgeNetfilter, error) {
	return ReadBridgeNetfilter(r.cfg.Sysctl)
}

// ReadBridgeNetfilter reads br_netfilter's sysctls through s.
func ReadBridgeNetfilter(s Sysctl) (snapshot.BridgeNetfilter, error) {
	var b snapshot.BridgeNetfilter
	keys := []struct {
		key string
		dst *bool
	}{
		{snapshot.BridgeNFCallIPTables, &b.CallIPTables},
		{snapshot.BridgeNFCallIP6Tables, &b.CallIP6Tables},
		{snapshot.BridgeNFCallARPTables, &b.CallARPTables},
	}
	for i, k := range keys {
		v, err := s.Read(k.key)
		if err != nil {
			if i == 0 && errors.Is(err, fs.ErrNotExist) {
				b.Known = true // module absent: nothing of it applies
				return b, nil
			}
			return snapshot.BridgeNetfilter{}, fmt.Errorf("br_netfilter: %w", err)
		}
		*k.dst = v == "1"
	}
	b.Known, b.Loaded = true, true
	return b, nil
}
