package libvirtxml

import (
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

func TestDefaultNetworkXML(t *testing.T) {
	n, err := ParseNetworkXML(DefaultNetworkXML)
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != DefaultNetworkName || n.Bridge != DefaultBridge || n.Subnet() != DefaultSubnet ||
		n.Forward != snapshot.ForwardNAT || !n.HasDHCP() {
		t.Fatalf("stock default network parsed as %+v", n)
	}
	r := n.IPs[0].DHCPRanges
	if len(r) != 1 || r[0].Start != "192.168.122.2" || r[0].End != "192.168.122.254" {
		t.Fatalf("DHCP range %+v, want .2-.254", r)
	}
}

func TestSubnetFree(t *testing.T) {
	other := []snapshot.Network{{Name: "lab", IPs: []snapshot.NetworkIP{{Family: 4, Subnet: "10.9.0.0/16"}}}}
	tests := []struct {
		name     string
		subnet   string
		host     []string
		nets     []snapshot.Network
		wantFree bool
		wantEv   string
	}{
		{"nothing on the host", DefaultSubnet, nil, nil, true, "subnet=192.168.122.0/24 free=yes"},
		{"host address inside", DefaultSubnet, []string{"10.0.0.2/24", "192.168.122.5/24"}, nil, false, "collides=host:192.168.122.5/24"},
		{"wider host route covers it", DefaultSubnet, []string{"192.168.0.0/16"}, nil, false, "collides=host:192.168.0.0/16"},
		{"default route ignored", DefaultSubnet, []string{"0.0.0.0/0", "::/0"}, nil, true, "free=yes"},
		{"bare address", DefaultSubnet, []string{"192.168.122.1"}, nil, false, "host:192.168.122.1"},
		{"another libvirt network", "10.9.3.0/24", nil, other, false, "collides=network:lab=10.9.0.0/16"},
		{"unparsable host entry listed", DefaultSubnet, []string{"junk"}, nil, true, "ignored=junk"},
		{"invalid subnet", "300.0.0.0/8", nil, nil, false, "invalid="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			free, ev := SubnetFree(tc.subnet, tc.host, tc.nets)
			if free != tc.wantFree || !strings.Contains(ev, tc.wantEv) {
				t.Fatalf("SubnetFree = %v %q, want %v and evidence containing %q", free, ev, tc.wantFree, tc.wantEv)
			}
		})
	}
}
