package firewall

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current parser output")

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustIPT(t testing.TB, name, variant string) *IPTables {
	t.Helper()
	ipt, err := ParseIptablesSave(string(readTestdata(t, name)), variant)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ipt
}

func mustNFT(t testing.TB, name string) *NFTables {
	t.Helper()
	nt, err := ParseNftJSON(readTestdata(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return nt
}

// defaultNet is libvirt's stock default network as the libvirt adapter reports it.
func defaultNet() snapshot.Network {
	return snapshot.Network{Name: "default", Active: true, Forward: snapshot.ForwardNAT, Bridge: "virbr0",
		DNSEnabled: true,
		IPs: []snapshot.NetworkIP{{Family: 4, Address: "192.168.122.1", Prefix: 24, Subnet: "192.168.122.0/24",
			DHCPRanges: []snapshot.DHCPRange{{Start: "192.168.122.2", End: "192.168.122.254"}}}}}
}

func flowsByKind(fw snapshot.Firewall, kind string) []snapshot.Flow {
	var out []snapshot.Flow
	for _, f := range fw.Flows {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
