package firewall

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/runner"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// TestBridgedRealTraffic checks the bridged-flow evaluator against the kernel: a host namespace with
// br0 (the "LAN" namespace's veth enslaved as uplink, a "guest" namespace's veth as the tap), Docker's
// FORWARD DROP loaded with iptables-nft. br_netfilter is built into this kernel and a new namespace
// starts with bridge-nf-call-iptables=1, so bridged frames meet the DROP: the evaluator must say
// drop and real HTTP from the guest to the LAN must fail; after BridgedAcceptFix both say accept.
// Then the rule goes and the sysctl goes to 0 in the namespace: traffic passes again, and the
// evaluator says accept because of the sysctl. The test's own namespace is never changed.
func TestBridgedRealTraffic(t *testing.T) {
	testenv.Require(t, "ip", "iptables-nft", "iptables-nft-restore", "iptables-save", "nft", "curl", "python3", "sysctl")
	host := testenv.NewNetns(t, "bn")
	guest := testenv.NewNetns(t, "bn")
	lan := testenv.NewNetns(t, "bn")
	host.MustRun("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0")
	host.Veth("eth0", lan, "lan0")
	host.Veth("vnet0", guest, "ens3")
	for _, p := range []string{"eth0", "vnet0"} {
		host.MustRun("ip", "link", "set", p, "master", "br0")
	}
	host.MustRun("ip", "link", "set", "br0", "up")
	host.MustRun("ip", "addr", "add", "192.168.1.10/24", "dev", "br0")
	guest.MustRun("ip", "addr", "add", "192.168.1.11/24", "dev", "ens3")
	lan.MustRun("ip", "addr", "add", "192.168.1.1/24", "dev", "lan0")
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/index.html", []byte("lan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := lan.Start("http", nil, "python3", "-m", "http.server", "80", "--bind", "192.168.1.1", "--directory", dir)
	reach := func() bool {
		_, err := guest.Run("curl", "-sS", "-o", "/dev/null", "--connect-timeout", "2", "--max-time", "4", "http://192.168.1.1/")
		return err == nil
	}
	if err := testenv.WaitFor(30*time.Second, 200*time.Millisecond, func() (bool, error) { return reach() && !srv.Exited(), nil }); err != nil {
		t.Fatalf("guest cannot reach the LAN over the bridge before any rule: %v (%s)", err, srv.Output())
	}
	ownBefore, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	if err != nil {
		t.Fatalf("this kernel has br_netfilter built in; /proc/sys/net/bridge is missing: %v", err)
	}

	host.MustRun("iptables-nft-restore", absTestdata(t, "docker-forward-drop.rules"))
	r := runner.NewExec(runner.InNetns(host.Name))
	bnf := func() snapshot.BridgeNetfilter {
		v := strings.TrimSpace(host.MustRun("sysctl", "-n", snapshot.BridgeNFCallIPTables))
		return snapshot.BridgeNetfilter{Known: true, Loaded: true, CallIPTables: v == "1"}
	}
	paths := []BridgedPath{{Bridge: "br0", Domain: "guest", MAC: "52:54:00:00:00:01", Tap: "vnet0", Uplink: "eth0",
		Guest: netip.MustParseAddr("192.168.1.11")}}
	evalEgress := func() snapshot.Flow {
		st, err := NewReader(r, Options{}).Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range st.BridgedFlows(paths, bnf()) {
			if f.Kind == "egress" && f.DPort == 80 {
				return f
			}
		}
		t.Fatal("no bridged egress flow")
		return snapshot.Flow{}
	}

	f := evalEgress()
	if f.Verdict != snapshot.VerdictDrop || f.Rule != "policy DROP of FORWARD" || f.Sysctl != "net.bridge.bridge-nf-call-iptables=1" {
		t.Fatalf("with Docker's DROP and br_netfilter on: %+v", f)
	}
	if reach() {
		t.Fatal("the evaluator says drop but the guest reaches the LAN")
	}

	fix, err := BridgedAcceptFix("br0", "DOCKER-USER", "iptables-nft")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent: the second run finds the rule with -C
		if _, err := NewFixer(r).Apply(context.Background(), fix, false); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(host.MustRun("iptables-nft-save"), "kvmnet: bridged guests on br0"); n != 1 {
		t.Fatalf("the accept rule is there %d times", n)
	}
	if f := evalEgress(); f.Verdict != snapshot.VerdictAccept || !strings.Contains(f.Rule, "--physdev-is-bridged") {
		t.Fatalf("after the fix: %+v", f)
	}
	if !reach() {
		t.Fatal("the evaluator says accept after the fix but the guest cannot reach the LAN")
	}

	host.MustRun("iptables-nft", "-D", "DOCKER-USER", "-i", "br0", "-o", "br0", "-m", "physdev", "--physdev-is-bridged",
		"-m", "comment", "--comment", "kvmnet: bridged guests on br0", "-j", "ACCEPT")
	if reach() {
		t.Fatal("rule removed, sysctl still 1: the guest should be cut off again")
	}
	host.MustRun("sysctl", "-qw", snapshot.BridgeNFCallIPTables+"=0")
	if f := evalEgress(); f.Verdict != snapshot.VerdictAccept || f.Backend != "none" || f.Sysctl != "net.bridge.bridge-nf-call-iptables=0" {
		t.Fatalf("with the sysctl 0: %+v", f)
	}
	if !reach() {
		t.Fatal("bridge-nf-call-iptables=0 but the guest cannot reach the LAN through Docker's DROP")
	}
	if own, _ := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); string(own) != string(ownBefore) {
		t.Fatalf("the test's own namespace changed: %q -> %q", ownBefore, own)
	}
}
