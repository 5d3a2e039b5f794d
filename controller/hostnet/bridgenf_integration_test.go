package hostnet

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// TestNetnsHostBridge builds a host bridge the way the Debian server tutorial does (br0 with the
// uplink enslaved, a guest tap on it) in a namespace and checks the port details and the
// namespace's own br_netfilter sysctls, which it turns off there without touching the test's own.
func TestNetnsHostBridge(t *testing.T) {
	testenv.Require(t, "ip", "sysctl")
	host := testenv.NewNetns(t, "hb")
	lan := testenv.NewNetns(t, "hb")
	host.MustRun("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0")
	host.Veth("eth0", lan, "lan0")
	host.MustRun("ip", "link", "set", "eth0", "master", "br0")
	host.MustRun("ip", "tuntap", "add", "dev", "vnet0", "mode", "tap")
	host.MustRun("ip", "link", "set", "vnet0", "master", "br0")
	host.MustRun("ip", "link", "set", "br0", "up")
	host.MustRun("ip", "link", "set", "vnet0", "up")

	r := readerForNetns(t, host.Name, t.TempDir())
	h, err := r.Host(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Bridges) != 1 || len(h.Bridges[0].PortInfo) != 2 {
		t.Fatalf("bridges: %+v", h.Bridges)
	}
	br := h.Bridges[0]
	up, ok1 := br.Port("eth0")
	tap, ok2 := br.Port("vnet0")
	if !ok1 || !ok2 || up.Kind != "veth" || tap.Kind != "tuntap" || !up.AdminUp || !tap.AdminUp {
		t.Fatalf("ports: %+v", br.PortInfo)
	}
	// No process holds the tap open: its carrier is off and the bridge keeps the port disabled; the
	// veth's peer is up, so that port forwards (STP off).
	if tap.STPState != "disabled" || up.STPState != "forwarding" {
		t.Fatalf("STP port states: tap %q uplink %q", tap.STPState, up.STPState)
	}
	if !h.BridgeNF.Known || !h.BridgeNF.Loaded || !h.BridgeNF.CallIPTables {
		t.Fatalf("br_netfilter in a new namespace (this kernel has it built in, default 1): %+v", h.BridgeNF)
	}

	before, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	if err != nil {
		t.Fatalf("this kernel has br_netfilter built in; /proc/sys/net/bridge is missing: %v", err)
	}
	host.MustRun("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
	bnf, err := r.BridgeNetfilter()
	if err != nil || bnf.CallIPTables || !bnf.CallIP6Tables {
		t.Fatalf("after setting it 0 in the namespace: %+v, %v", bnf, err)
	}
	after, _ := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	if strings.TrimSpace(string(after)) != strings.TrimSpace(string(before)) {
		t.Fatalf("the test process's own sysctl changed: %q -> %q", before, after)
	}
}
